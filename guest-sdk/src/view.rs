//! [`View`]: a record read in place, without decoding it into owned values.
//!
//! Why: a step declared on a type (`map(|r: KeyRecord| ...)`) gets its record decoded in
//! full: every string of it copied into a `String` of its own, then serde. A step that
//! only reads a field or two (a hash's `genres`, a message's fields, a key's prefix) paid
//! for all the rest. A step declared on a `View` (`map_view`, `filter_view`,
//! `foreach_view`) reads the record where it lies: when it is the first step of the
//! guest's part of the pipeline, in the buffer the host sent the batch in (nothing is
//! copied but what the step keeps); later, in the record the step before produced.
//! [`View::decode`] gives the typed record when the step wants it after all.
//!
//! What stays the same: the records, their order, what passes on (a `filter_view` or
//! `foreach_view` passes the record itself on, decoded then, if a step follows), errors.

use rmpv::{Value, ValueRef};
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A record, or part of one, read in place. Cheap to copy around; lives as long as the
/// step's call.
///
/// ```
/// use gears::{GearsBuilder, View};
/// // the length of each hash's `genres` field, without copying the rest of the record
/// let b = GearsBuilder::new("KeysReader").map_view(|r: View<'_>| {
///     Ok(r.get("value").and_then(|v| v.get("genres")).and_then(|g| g.as_str()).map(str::len))
/// });
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct View<'a>(pub(crate) ValueRef<'a>);

impl<'a> View<'a> {
    /// The text of a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.0 {
            ValueRef::String(s) => s.into_str(),
            _ => None,
        }
    }

    /// The bytes of a string or of a binary (the host sends a Redis value that is not
    /// UTF-8 as a binary).
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.0 {
            ValueRef::String(s) => s.into_str().map(str::as_bytes),
            ValueRef::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// An integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.0 {
            ValueRef::Integer(i) => i.as_i64(),
            _ => None,
        }
    }

    /// A float, or an integer as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match &self.0 {
            ValueRef::F32(f) => Some(f64::from(*f)),
            ValueRef::F64(f) => Some(*f),
            ValueRef::Integer(i) => i.as_f64(),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.0 {
            ValueRef::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether it is nil (Python's None, a missing reply).
    pub fn is_nil(&self) -> bool {
        matches!(self.0, ValueRef::Nil)
    }

    /// The value of a map's string key `field` (a record's `"key"`, `"value"`, a hash's
    /// field), if it is a map that has it.
    pub fn get(&self, field: &str) -> Option<View<'a>> {
        match &self.0 {
            ValueRef::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, ValueRef::String(s) if s.into_str() == Some(field)))
                .map(|(_, v)| View(v.clone())),
            _ => None,
        }
    }

    /// Item `i` of an array (a tuple record, a list).
    pub fn at(&self, i: usize) -> Option<View<'a>> {
        match &self.0 {
            ValueRef::Array(items) => items.get(i).map(|v| View(v.clone())),
            _ => None,
        }
    }

    /// The items of an array, or the values of a map's entries, in order.
    pub fn items(&self) -> Vec<View<'a>> {
        match &self.0 {
            ValueRef::Array(items) => items.iter().map(|v| View(v.clone())).collect(),
            ValueRef::Map(pairs) => pairs.iter().map(|(_, v)| View(v.clone())).collect(),
            _ => Vec::new(),
        }
    }

    /// The entries of a map, in order (a hash's fields and values, a message's).
    pub fn entries(&self) -> Vec<(View<'a>, View<'a>)> {
        match &self.0 {
            ValueRef::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| (View(k.clone()), View(v.clone())))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The record as the type a typed step would get (`KeyRecord`, `(String, i64)`, ...),
    /// decoded now: with the same errors as a typed step.
    pub fn decode<T: DeserializeOwned + 'static>(&self) -> Result<T> {
        crate::value::decode(std::borrow::Cow::Owned(self.to_value()), "record")
    }

    /// An owned copy, as a [`Value`].
    pub fn to_value(&self) -> Value {
        self.0.to_owned()
    }

    /// A view of an owned value.
    pub fn of(value: &'a Value) -> View<'a> {
        View(value.as_ref())
    }
}

/// The records of a MessagePack array, each read in place, in order; an error when the
/// bytes are not one.
pub(crate) fn records(batch: &[u8]) -> std::result::Result<Vec<ValueRef<'_>>, Error> {
    let mut rest = batch;
    let n = rmp::decode::read_array_len(&mut rest)
        .map_err(|e| Error::msg(format!("the records are not a MessagePack array: {e}")))?;
    let mut out = Vec::with_capacity((n as usize).min(rest.len()));
    for _ in 0..n {
        let record = rmpv::decode::read_value_ref(&mut rest)
            .map_err(|e| Error::msg(format!("a record does not decode: {e}")))?;
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).expect("to a Vec");
        out
    }

    fn record() -> Value {
        Value::Map(vec![
            (Value::from("key"), Value::from("movie:1")),
            (
                Value::from("value"),
                Value::Map(vec![
                    (Value::from("title"), Value::from("Heat")),
                    (Value::from("year"), Value::from(1995)),
                ]),
            ),
            (
                Value::from("flags"),
                Value::Array(vec![Value::Boolean(true)]),
            ),
            (Value::from("bin"), Value::Binary(vec![0xff, 0])),
            (Value::from("score"), Value::F64(7.5)),
            (Value::from("none"), Value::Nil),
        ])
    }

    #[test]
    fn reads_fields_in_place() {
        let bytes = encoded(&Value::Array(vec![record(), Value::from("k")]));
        let recs = records(&bytes).expect("an array");
        assert_eq!(recs.len(), 2);
        let r = View(recs[0].clone());
        assert_eq!(r.get("key").and_then(|k| k.as_str()), Some("movie:1"));
        let title = r.get("value").and_then(|v| v.get("title"));
        assert_eq!(title.and_then(|t| t.as_str()), Some("Heat"));
        let year = r.get("value").and_then(|v| v.get("year"));
        assert_eq!(year.as_ref().and_then(View::as_i64), Some(1995));
        assert_eq!(year.and_then(|y| y.as_f64()), Some(1995.0));
        assert_eq!(
            r.get("flags")
                .and_then(|f| f.at(0))
                .and_then(|b| b.as_bool()),
            Some(true)
        );
        assert_eq!(
            r.get("bin").and_then(|b| b.as_bytes()),
            Some(&[0xff, 0][..])
        );
        assert_eq!(r.get("bin").and_then(|b| b.as_str()), None, "not text");
        assert_eq!(r.get("score").and_then(|s| s.as_f64()), Some(7.5));
        assert!(r.get("none").is_some_and(|n| n.is_nil()));
        assert!(r.get("missing").is_none());
        assert_eq!(r.entries().len(), 6);
        assert_eq!(r.get("value").map(|v| v.items().len()), Some(2));
        assert_eq!(View(recs[1].clone()).as_str(), Some("k"));
        assert_eq!(r.to_value(), record(), "an owned copy is the record");
        // The string is the batch's own bytes: nothing was copied.
        let key = r.get("key").and_then(|k| k.as_str()).expect("text");
        let within = bytes.as_ptr_range();
        assert!(within.contains(&key.as_ptr()));
    }

    #[test]
    fn decodes_the_typed_record_when_asked() {
        let v = record();
        let r = View::of(&v);
        #[derive(serde::Deserialize)]
        struct Movie {
            key: String,
        }
        let m: Movie = r.decode().expect("has a key");
        assert_eq!(m.key, "movie:1");
        let e = View::of(&v)
            .decode::<i64>()
            .expect_err("a map is no integer");
        assert!(e.message().contains("record"), "{}", e.message());
    }

    #[test]
    fn not_an_array_is_an_error() {
        assert!(records(&encoded(&Value::from(1))).is_err());
        let mut bytes = encoded(&Value::Array(vec![Value::from("a"), Value::from("b")]));
        bytes.truncate(bytes.len() - 1);
        assert!(records(&bytes).is_err(), "truncated");
    }
}
