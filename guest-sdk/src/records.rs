//! Typed shapes of the records the readers produce (ENCODING.md), for step functions
//! that would rather not pick a [`Value`] apart.

use std::fmt;

use rmpv::Value;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// A KeysReader record: `{key, value, type, event}`, or `{key, event}` when the reader
/// runs with `read_value(false)`. Missing fields read as `None`.
///
/// `value` is a str for a string key, a map for a hash, an array for a list, nil
/// otherwise; `kind` (`type` in the record) is `string`, `hash`, `list`, `set`, `zset`,
/// `stream`, a module type's own name (`ReJSON-RL`) or `empty`; `event` is the keyspace event (nil in a batch run).
/// It serializes back to the same shape (without `value` and `type` when both are `None`).
/// The key must be UTF-8 text; take a [`Value`] for binary key names.
///
/// ```no_run
/// use gears::{execute, GearsBuilder, KeyRecord, Register};
///
/// let plan = GearsBuilder::new("KeysReader")
///     .filter(|r: KeyRecord| Ok(r.kind.as_deref() == Some("hash")))
///     .foreach(|r: KeyRecord| {
///         execute(["sadd", "hashes", r.key.as_str()])?;
///         Ok(())
///     })
///     .register(Register::new().prefix("user:*"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct KeyRecord {
    /// The key's name.
    pub key: String,
    /// The key's value (None with `read_value(false)`).
    pub value: Option<Value>,
    /// The key's type (`type` in the record).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The keyspace event that fired the registration; None in a run.
    pub event: Option<String>,
}

impl Serialize for KeyRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let full = self.value.is_some() || self.kind.is_some();
        let mut st = s.serialize_struct("KeyRecord", if full { 4 } else { 2 })?;
        st.serialize_field("key", &self.key)?;
        if full {
            st.serialize_field("value", &self.value)?;
            st.serialize_field("type", &self.kind)?;
        }
        st.serialize_field("event", &self.event)?;
        st.end()
    }
}

/// A StreamReader record: `{key, id, value: {field: value}}`, the fields in the
/// message's order. Fields and values must be UTF-8 text (a binary one fails the
/// record's decoding); take a [`Value`] to see them as they are.
///
/// ```no_run
/// use gears::{execute, GearsBuilder, Register, StreamRecord};
///
/// let plan = GearsBuilder::new("StreamReader")
///     .foreach(|m: StreamRecord| {
///         if let Some(user) = m.get("user") {
///             execute(["incr", &format!("msgs:{user}")])?;
///         }
///         Ok(())
///     })
///     .register(Register::new().prefix("events"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The stream's key.
    pub key: String,
    /// The message id, e.g. `1700000000000-0`.
    pub id: String,
    /// The message's field/value pairs, in order.
    #[serde(with = "pairs")]
    pub value: Vec<(String, String)>,
}

impl StreamRecord {
    /// The value of the message's first field called `field`.
    ///
    /// ```
    /// let m = gears::StreamRecord {
    ///     key: "s".into(),
    ///     id: "1-0".into(),
    ///     value: vec![("a".into(), "1".into())],
    /// };
    /// assert_eq!(m.get("a"), Some("1"));
    /// assert_eq!(m.get("b"), None);
    /// ```
    pub fn get(&self, field: &str) -> Option<&str> {
        self.value
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_str())
    }
}

/// `Vec<(String, String)>` as a MessagePack map (also read from an array of pairs).
mod pairs {
    use super::*;

    pub fn serialize<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(pairs.len()))?;
        for (k, v) in pairs {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field/value pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pair) = seq.next_element()? {
                    out.push(pair);
                }
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
        }
        d.deserialize_any(PairsVisitor)
    }
}

/// A groupby-style result `{key, value}` (groupby, batchgroupby, localgroupby,
/// aggregateby, countby).
///
/// ```no_run
/// use gears::{GearsBuilder, GroupResult, Run};
///
/// // keep the genres seen more than 10 times
/// let plan = GearsBuilder::new("KeysOnlyReader")
///     .countby(|key: String| Ok(key.split(':').next().unwrap_or("").to_string()))
///     .filter(|g: GroupResult<String, i64>| Ok(g.value > 10))
///     .run(Run::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct GroupResult<K, V> {
    /// The group's key.
    pub key: K,
    /// What the group reduced to.
    pub value: V,
}

/// A TimeReader record: `{time: unix milliseconds, tick: n}`.
///
/// ```no_run
/// use gears::{execute, GearsBuilder, Register, TimeRecord};
///
/// let plan = GearsBuilder::new("TimeReader")
///     .foreach(|t: TimeRecord| {
///         execute(["set", "last_tick", &t.tick.to_string()])?;
///         Ok(())
///     })
///     .register(Register::new().interval(1000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeRecord {
    /// When the tick fired, in unix milliseconds.
    pub time: i64,
    /// The tick's number, from 0.
    pub tick: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{from_value, to_value};

    #[test]
    fn key_record_shapes() {
        let no_value = Value::Map(vec![
            (Value::from("key"), Value::from("k")),
            (Value::from("event"), Value::Nil),
        ]);
        let r: KeyRecord = from_value(&no_value).unwrap();
        assert_eq!(r.key, "k");
        assert_eq!(r.kind, None);
        assert_eq!(to_value(&r).unwrap(), no_value);

        let full = Value::Map(vec![
            (Value::from("key"), Value::from("k")),
            (Value::from("value"), Value::from("v")),
            (Value::from("type"), Value::from("string")),
            (Value::from("event"), Value::from("set")),
        ]);
        let r: KeyRecord = from_value(&full).unwrap();
        assert_eq!(r.kind.as_deref(), Some("string"));
        assert_eq!(to_value(&r).unwrap(), full);
    }

    #[test]
    fn stream_record_keeps_field_order() {
        let v = Value::Map(vec![
            (Value::from("key"), Value::from("s")),
            (Value::from("id"), Value::from("1-0")),
            (
                Value::from("value"),
                Value::Map(vec![
                    (Value::from("z"), Value::from("1")),
                    (Value::from("a"), Value::from("2")),
                ]),
            ),
        ]);
        let r: StreamRecord = from_value(&v).unwrap();
        assert_eq!(
            r.value,
            vec![("z".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert_eq!(to_value(&r).unwrap(), v);
    }
}
