//! A Redis reply as the fake keyspace (or a test's own handler) gives it, and how it
//! reaches the guest: the typed WIT reply of `call`, or MessagePack for the rest.

use rmpv::Value;

use crate::__rt::bindings::redisgears::guest::types::Reply as WitReply;

/// A Redis reply (RESP2, as the host calls Redis), what [`Keyspace::command`] answers
/// and what a [`TestHost::on_command`] handler returns.
///
/// The guest sees it as the real host hands it over (guest-sdk/wit/ENCODING.md): nil, an
/// integer and a bulk or status string as they are, an array as a MessagePack array, an
/// error as `Err(text)` from `execute` (inside an array, `Value::Ext(1, text)`).
///
/// ```
/// use gears::testing::Reply;
/// assert_eq!(Reply::from("v"), Reply::Bulk(b"v".to_vec()));
/// assert_eq!(Reply::ok().to_value(), gears::Value::from("OK"));
/// ```
///
/// [`Keyspace::command`]: super::Keyspace::command
/// [`TestHost::on_command`]: super::TestHost::on_command
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A nil bulk string or array.
    Nil,
    /// An integer.
    Int(i64),
    /// A bulk string's bytes.
    Bulk(Vec<u8>),
    /// A status reply (`+OK`), without the `+`.
    Status(String),
    /// A double: the host packs it as a MessagePack float (for a handler that fakes a
    /// module's command; the keyspace never answers one).
    Double(f64),
    /// An array.
    Array(Vec<Reply>),
    /// An error reply's text, e.g. `ERR syntax error`.
    Error(String),
}

impl Reply {
    /// `+OK`.
    ///
    /// ```
    /// assert_eq!(gears::testing::Reply::ok(), gears::testing::Reply::Status("OK".into()));
    /// ```
    pub fn ok() -> Reply {
        Reply::Status("OK".into())
    }

    /// An error reply with this text.
    ///
    /// ```
    /// let e = gears::testing::Reply::error("ERR nope");
    /// assert_eq!(e, gears::testing::Reply::Error("ERR nope".into()));
    /// ```
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// The reply as `execute` gives it, an error as `Value::Ext(1, text)` (as an error
    /// element of an array is).
    ///
    /// ```
    /// use gears::{testing::Reply, Value};
    /// let r = Reply::Array(vec![Reply::Int(1), Reply::Bulk(vec![0xff]), Reply::Nil]);
    /// assert_eq!(
    ///     r.to_value(),
    ///     Value::Array(vec![Value::from(1), Value::Binary(vec![0xff]), Value::Nil])
    /// );
    /// ```
    pub fn to_value(&self) -> Value {
        match self {
            Reply::Nil => Value::Nil,
            Reply::Int(i) => Value::from(*i),
            Reply::Bulk(b) => bytes_value(b),
            Reply::Status(s) => Value::from(s.as_str()),
            Reply::Double(d) => Value::F64(*d),
            Reply::Array(items) => Value::Array(items.iter().map(Reply::to_value).collect()),
            Reply::Error(e) => Value::Ext(1, e.as_bytes().to_vec()),
        }
    }

    /// What the host's `call` answers: simple replies typed, the rest packed.
    pub(crate) fn into_wit(self) -> Result<WitReply, String> {
        Ok(match self {
            Reply::Nil => WitReply::Nil,
            Reply::Int(i) => WitReply::Int(i),
            Reply::Bulk(b) => WitReply::Bulk(b),
            Reply::Status(s) => WitReply::Bulk(s.into_bytes()),
            Reply::Error(e) => return Err(e),
            other => WitReply::Packed(crate::builder::encode(&other.to_value())),
        })
    }
}

/// Bytes as the host shows them: a str when they are UTF-8, else a bin.
pub(crate) fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::from(s),
        Err(_) => Value::Binary(b.to_vec()),
    }
}

impl From<&str> for Reply {
    fn from(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }
}

impl From<String> for Reply {
    fn from(s: String) -> Reply {
        Reply::Bulk(s.into_bytes())
    }
}

impl From<Vec<u8>> for Reply {
    fn from(b: Vec<u8>) -> Reply {
        Reply::Bulk(b)
    }
}

impl From<i64> for Reply {
    fn from(i: i64) -> Reply {
        Reply::Int(i)
    }
}

impl<T: Into<Reply>> From<Option<T>> for Reply {
    fn from(v: Option<T>) -> Reply {
        v.map_or(Reply::Nil, Into::into)
    }
}
