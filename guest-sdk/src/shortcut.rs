//! Moves of the commonest record types between [`Value`] and Rust without serde.
//!
//! Why: serde's deserializer borrows the `Value`, so even an owned record is copied into
//! a new `String`, and serializing a `String` copies it again; a step like
//! `map(|key: String| ...)` paid two allocations and two copies per record for nothing.
//! Here a `String` or `Option<String>` moves in and out of its `Value` as is. Every other
//! case (other types, text that is not valid UTF-8, a value of another kind) returns its
//! input untouched, and the caller takes the serde path with its usual errors.

use std::any::{Any, TypeId};

use rmpv::{Utf8String, Value};

/// `a` as a `B` when `A` and `B` are the same type, else `a` back.
fn same<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    if TypeId::of::<A>() != TypeId::of::<B>() {
        return Err(a);
    }
    let mut slot = Some(a);
    let b = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .and_then(Option::take);
    Ok(b.expect("A is B, so the full slot downcasts"))
}

/// The text of a str value that is valid UTF-8, moved out.
fn text(v: Value) -> Result<String, Value> {
    match v {
        Value::String(s) if s.is_str() => Ok(s.into_str().unwrap_or_default()),
        other => Err(other),
    }
}

/// `T` taken out of `v` without copying, for T = `String` or `Option<String>`, exactly as
/// serde would decode it (nil is None; anything else is `Some` of its decoding).
pub(crate) fn take<T: 'static>(v: Value) -> Result<T, Value> {
    if TypeId::of::<T>() == TypeId::of::<String>() {
        return text(v).and_then(|s| same::<String, T>(s).map_err(Value::from));
    }
    if TypeId::of::<T>() == TypeId::of::<Option<String>>() {
        let opt = match v {
            Value::Nil => None,
            v => Some(text(v)?),
        };
        return same::<Option<String>, T>(opt).map_err(|o| o.map_or(Value::Nil, Value::from));
    }
    Err(v)
}

/// `t` as a `Value` without copying, for T = `String` or `Option<String>`, exactly as
/// serde would encode it (None is nil).
pub(crate) fn give<T: 'static>(t: T) -> Result<Value, T> {
    let t = match same::<T, String>(t) {
        Ok(s) => return Ok(Value::String(Utf8String::from(s))),
        Err(t) => t,
    };
    match same::<T, Option<String>>(t) {
        Ok(Some(s)) => Ok(Value::String(Utf8String::from(s))),
        Ok(None) => Ok(Value::Nil),
        Err(t) => Err(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_move_both_ways() {
        assert_eq!(take::<String>(Value::from("a")).ok(), Some("a".to_string()));
        assert_eq!(take::<Option<String>>(Value::Nil).ok(), Some(None));
        assert_eq!(
            take::<Option<String>>(Value::from("b")).ok(),
            Some(Some("b".to_string()))
        );
        assert_eq!(give("c".to_string()).ok(), Some(Value::from("c")));
        assert_eq!(give(Some("d".to_string())).ok(), Some(Value::from("d")));
        assert_eq!(give(None::<String>).ok(), Some(Value::Nil));
    }

    #[test]
    fn everything_else_comes_back_untouched() {
        assert_eq!(take::<String>(Value::from(1)).err(), Some(Value::from(1)));
        assert_eq!(take::<String>(Value::Nil).err(), Some(Value::Nil));
        assert_eq!(
            take::<Option<String>>(Value::from(2)).err(),
            Some(Value::from(2))
        );
        assert_eq!(take::<i64>(Value::from("x")).err(), Some(Value::from("x")));
        let bad = rmpv::decode::read_value(&mut &[0xa1, 0xff][..]).unwrap();
        assert_eq!(take::<String>(bad.clone()).err(), Some(bad.clone()));
        assert_eq!(take::<Option<String>>(bad.clone()).err(), Some(bad));
        assert_eq!(give(5i64).err(), Some(5));
        assert_eq!(
            give(vec!["a".to_string()]).err(),
            Some(vec!["a".to_string()])
        );
    }
}
