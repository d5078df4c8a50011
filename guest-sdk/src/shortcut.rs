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

/// The header length and text length of a MessagePack str at the start of `b`.
fn str_header(b: &[u8]) -> Option<(usize, usize)> {
    let be = |n: usize| {
        b.get(1..1 + n)
            .map(|s| s.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    };
    match *b.first()? {
        m @ 0xa0..=0xbf => Some((1, usize::from(m & 0x1f))),
        0xd9 => Some((2, be(1)?)),
        0xda => Some((3, be(2)?)),
        0xdb => Some((5, be(4)?)),
        _ => None,
    }
}

/// `T` straight from the MessagePack bytes of a reply, for T = `String` or
/// `Option<String>` when the bytes are exactly one nil or one valid UTF-8 str: the reply's
/// own buffer becomes the `String`, with no `Value` in between. Any other bytes come back.
pub(crate) fn take_packed<T: 'static>(mut bytes: Vec<u8>) -> Result<T, Vec<u8>> {
    let optional = TypeId::of::<T>() == TypeId::of::<Option<String>>();
    if !optional && TypeId::of::<T>() != TypeId::of::<String>() {
        return Err(bytes);
    }
    if optional && bytes == [0xc0] {
        return same::<Option<String>, T>(None).map_err(|_| bytes);
    }
    let Some((header, len)) = str_header(&bytes) else {
        return Err(bytes);
    };
    if header.checked_add(len) != Some(bytes.len()) {
        return Err(bytes);
    }
    let head: Vec<u8> = bytes.drain(..header).collect();
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            // Not UTF-8: the caller decodes it as before (a bin-like str).
            let mut bytes = e.into_bytes();
            bytes.splice(0..0, head);
            return Err(bytes);
        }
    };
    if optional {
        same::<Option<String>, T>(Some(text)).map_err(|_| Vec::new())
    } else {
        same::<String, T>(text).map_err(|_| Vec::new())
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

    fn packed(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn replies_of_text_and_nil_decode_in_place() {
        for text in [
            "",
            "abc",
            &"x".repeat(31),
            &"y".repeat(32),
            &"z".repeat(70000),
        ] {
            let bytes = packed(&Value::from(text));
            assert_eq!(
                take_packed::<String>(bytes.clone()).ok().as_deref(),
                Some(text)
            );
            let opt = take_packed::<Option<String>>(bytes).ok();
            assert_eq!(opt, Some(Some(text.to_string())));
        }
        assert_eq!(take_packed::<Option<String>>(vec![0xc0]).ok(), Some(None));
        // str8 holding a short text is valid MessagePack too
        assert_eq!(
            take_packed::<String>(vec![0xd9, 1, b'q']).ok().as_deref(),
            Some("q")
        );
    }

    #[test]
    fn other_replies_come_back_byte_for_byte() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0xc0],             // nil is no String
            vec![0x01],             // an integer
            vec![0xa2, b'a'],       // truncated
            vec![0xa1, b'a', 0x01], // trailing bytes
            vec![0xa2, 0xff, 0xfe], // not UTF-8
            vec![0xd9],             // no length
            vec![0x91, 0xa1, b'a'], // an array
            vec![],
        ];
        for bytes in cases {
            assert_eq!(
                take_packed::<String>(bytes.clone()).err(),
                Some(bytes.clone())
            );
            if bytes != [0xc0] {
                let back = take_packed::<Option<String>>(bytes.clone()).err();
                assert_eq!(back, Some(bytes.clone()));
            }
        }
        assert_eq!(take_packed::<i64>(vec![0x01]).err(), Some(vec![0x01]));
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
