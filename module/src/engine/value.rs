//! The one value type the engine moves between steps, readers and replies.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An object owned by a language host (a Python object, later a guest handle) that the
/// engine carries between that host's steps without looking inside.
pub trait HostObject: Send + Sync + fmt::Debug {
    fn as_any(&self) -> &dyn Any;
    /// A plain stand-in that native steps hash, compare and sort by (e.g. a Python tuple's
    /// items), or None to compare by identity.
    fn key(&self) -> Option<&Value>;
    /// The object as a reply, by its host's rules.
    fn to_reply(&self) -> Value;
    /// The object as plain data, to send to another shard; None when it is not data
    /// (it then becomes the error "Failed serializing record", as in RedisGears 1.2).
    fn to_data(&self) -> Option<Value> {
        None
    }
}

/// What a [`Tagged`] sequence is in the language that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Tuple,
    Set,
}

/// A sequence its language tells from a list (a Python tuple or set), as it travels
/// between shards: the host that receives it makes it that kind again. Native steps and
/// replies see its items as a list.
#[derive(Debug)]
pub struct Tagged {
    pub tag: Tag,
    /// Always a `Value::List`.
    pub items: Value,
}

impl HostObject for Tagged {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn key(&self) -> Option<&Value> {
        Some(&self.items)
    }
    fn to_reply(&self) -> Value {
        self.items.clone()
    }
    fn to_data(&self) -> Option<Value> {
        Some(Value::Host(Arc::new(Tagged {
            tag: self.tag,
            items: self.items.clone(),
        })))
    }
}

/// A record or a reply element.
#[derive(Clone, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Ordered pairs: keeps insertion order, as Python dicts do.
    Map(Vec<(Value, Value)>),
    /// A simple-string reply (`+OK`); only produced for replies.
    Status(String),
    /// An error reply or an error element.
    Error(String),
    Host(Arc<dyn HostObject>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Bytes from Redis become a string when they are UTF-8, as recipes expect.
    pub fn from_redis_bytes(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        }
    }

    /// About how many bytes of memory the value holds: its slot plus what its strings and
    /// lists own (allocator overhead left out). Cheap enough to count every result.
    pub fn approx_size(&self) -> usize {
        let slot = std::mem::size_of::<Value>();
        slot + match self {
            Value::Str(s) | Value::Status(s) | Value::Error(s) => s.capacity(),
            Value::Bytes(b) => b.capacity(),
            Value::List(items) => items.iter().map(Value::approx_size).sum(),
            Value::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| k.approx_size() + v.approx_size())
                .sum(),
            // A host object's size is not known here; count what a small object takes.
            Value::Host(_) => 64,
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
        }
    }

    /// `{'key': k, 'value': v}`, the shape of every groupby-style result.
    pub fn key_value(key: Value, value: Value) -> Value {
        Value::Map(vec![(Value::str("key"), key), (Value::str("value"), value)])
    }

    /// The entry of a map under a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Value::Nil => 0,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) | Value::Status(_) => 2,
            Value::Bytes(_) => 3,
            Value::List(_) => 4,
            Value::Map(_) => 5,
            Value::Error(_) => 6,
            Value::Host(_) => 7,
        }
    }

    /// A total order: numbers by value (ints and floats compare with each other), then
    /// strings, bytes, lists and maps element-wise; values of different kinds by kind.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Int(a), Int(b)) => a.cmp(b),
            (Str(a) | Status(a), Str(b) | Status(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (List(a), List(b)) => cmp_seq(a.iter(), b.iter()),
            (Map(a), Map(b)) => cmp_seq(
                a.iter().flat_map(|(k, v)| [k, v]),
                b.iter().flat_map(|(k, v)| [k, v]),
            ),
            (Error(a), Error(b)) => a.cmp(b),
            (Host(a), Host(b)) => match (a.key(), b.key()) {
                (Some(x), Some(y)) => x.total_cmp(y),
                _ => (Arc::as_ptr(a) as *const () as usize)
                    .cmp(&(Arc::as_ptr(b) as *const () as usize)),
            },
            _ if self.type_rank() == 1 && other.type_rank() == 1 => {
                let (a, b) = (self.as_f64().unwrap_or(0.0), other.as_f64().unwrap_or(0.0));
                a.total_cmp(&b)
            }
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

fn cmp_seq<'a>(
    mut a: impl Iterator<Item = &'a Value>,
    mut b: impl Iterator<Item = &'a Value>,
) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.total_cmp(y) {
                Ordering::Equal => continue,
                other => return other,
            },
        }
    }
}

/// Equality consistent with `total_cmp` and `Hash`, so values can key a HashMap
/// (countby, distinct). `1 == 1.0 == True`, as in Python.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Nil => 0u8.hash(state),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
                let f = self.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    1u8.hash(state);
                    (f as i64).hash(state);
                } else {
                    2u8.hash(state);
                    f.to_bits().hash(state);
                }
            }
            Value::Str(s) | Value::Status(s) => {
                3u8.hash(state);
                s.hash(state)
            }
            Value::Bytes(b) => b.hash(state),
            Value::List(items) => {
                5u8.hash(state);
                items.iter().for_each(|v| v.hash(state));
            }
            Value::Map(pairs) => {
                6u8.hash(state);
                pairs.iter().for_each(|(k, v)| {
                    k.hash(state);
                    v.hash(state)
                });
            }
            Value::Error(e) => e.hash(state),
            Value::Host(h) => match h.key() {
                Some(key) => key.hash(state),
                None => (Arc::as_ptr(h) as *const () as usize).hash(state),
            },
        }
    }
}

/// Python-like text of a value, used for logs and for step arguments in RG.GETEXECUTION.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "None"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", format_float(*x)),
            Value::Str(s) | Value::Status(s) => write!(f, "'{s}'"),
            Value::Bytes(b) => write!(f, "b'{}'", String::from_utf8_lossy(b)),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(pairs) => {
                write!(f, "{{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
            Value::Error(e) => write!(f, "Error('{e}')"),
            Value::Host(h) => write!(f, "{h:?}"),
        }
    }
}

/// Float text as Python's `repr` gives it for the common cases (`1.0`, `0.5`, `1e+20`).
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn numbers_of_equal_value_are_one_key() {
        let mut m = HashMap::new();
        *m.entry(Value::Int(1)).or_insert(0) += 1;
        *m.entry(Value::Float(1.0)).or_insert(0) += 1;
        *m.entry(Value::Bool(true)).or_insert(0) += 1;
        assert_eq!(m.len(), 1);
        assert_eq!(m[&Value::Int(1)], 3);
    }

    #[test]
    fn order_is_numbers_then_strings() {
        let mut v = vec![
            Value::str("b"),
            Value::Int(3),
            Value::Float(1.5),
            Value::str("a"),
        ];
        v.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(
            v,
            vec![
                Value::Float(1.5),
                Value::Int(3),
                Value::str("a"),
                Value::str("b")
            ]
        );
    }

    #[test]
    fn approx_size_counts_what_values_own() {
        let slot = std::mem::size_of::<Value>();
        assert_eq!(Value::Int(5).approx_size(), slot);
        assert_eq!(Value::str("x".repeat(100)).approx_size(), slot + 100);
        let list = Value::List(vec![Value::str("ab"), Value::Nil]);
        assert_eq!(list.approx_size(), 3 * slot + 2);
        let map = Value::key_value(Value::str("k"), Value::Int(1));
        assert_eq!(
            map.approx_size(),
            5 * slot + "key".len() + 1 + "value".len()
        );
    }

    #[test]
    fn display_is_python_like() {
        let v = Value::key_value(Value::str("Comedy"), Value::Int(3));
        assert_eq!(v.to_string(), "{'key': 'Comedy', 'value': 3}");
        assert_eq!(Value::Float(2.0).to_string(), "2.0");
    }
}
