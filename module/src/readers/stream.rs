//! StreamReader for run(): the messages of a stream after a given id.

use anyhow::{anyhow, Result};

use super::keys::pairs;
use super::redis_call;
use crate::engine::reader::Reader;
use crate::engine::value::Value;

pub struct StreamReader {
    /// The streams to read: one name, or those matching a pattern (found on first use).
    keys: Option<Vec<String>>,
    pattern: String,
    from_id: String,
    /// Index into `keys` and the last id read from that stream.
    current: usize,
    last_id: Option<String>,
}

impl StreamReader {
    pub fn new(key: String, from_id: String) -> Self {
        StreamReader {
            keys: None,
            pattern: key,
            from_id,
            current: 0,
            last_id: None,
        }
    }

    fn keys(&mut self) -> Result<&Vec<String>> {
        if self.keys.is_none() {
            let keys = if self.pattern.contains('*') {
                matching_streams(&self.pattern)?
            } else {
                vec![self.pattern.clone()]
            };
            self.keys = Some(keys);
        }
        Ok(self.keys.as_ref().unwrap_or_else(|| unreachable!()))
    }
}

/// The streams whose names match `pattern` (a glob), sorted.
pub fn matching_streams(pattern: &str) -> Result<Vec<String>> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let reply = redis_call(&[
            b"SCAN",
            cursor.as_bytes(),
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            b"1000",
            b"TYPE",
            b"stream",
        ])?;
        let Value::List(mut parts) = reply else {
            return Err(anyhow!("SCAN failed"));
        };
        let (Some(Value::List(found)), Some(Value::Str(next))) = (parts.pop(), parts.pop()) else {
            return Err(anyhow!("SCAN replied an unexpected shape"));
        };
        keys.extend(found.into_iter().filter_map(|k| match k {
            Value::Str(s) => Some(s),
            _ => None,
        }));
        if next == "0" {
            keys.sort();
            keys.dedup();
            return Ok(keys);
        }
        cursor = next;
    }
}

/// One XRANGE entry `[id, [f1, v1, ...]]` as the record `{'key', 'id', 'value'}`.
pub fn message_record(stream: &str, entry: Value) -> Option<(String, Value)> {
    let Value::List(mut parts) = entry else {
        return None;
    };
    let fields = parts.pop()?;
    let Value::Str(id) = parts.pop()? else {
        return None;
    };
    let fields = match fields {
        Value::List(flat) => pairs(flat),
        _ => Value::Map(Vec::new()),
    };
    let record = Value::Map(vec![
        (Value::str("key"), Value::str(stream)),
        (Value::str("id"), Value::str(id.clone())),
        (Value::str("value"), fields),
    ]);
    Some((id, record))
}

impl Reader for StreamReader {
    fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Value>>> {
        loop {
            let current = self.current;
            let Some(key) = self.keys()?.get(current).cloned() else {
                return Ok(None);
            };
            let start = format!("({}", self.last_id.as_deref().unwrap_or(&self.from_id));
            let count = max.max(1).to_string();
            let reply = redis_call(&[
                b"XRANGE",
                key.as_bytes(),
                start.as_bytes(),
                b"+",
                b"COUNT",
                count.as_bytes(),
            ]);
            let entries = match reply {
                Ok(Value::List(entries)) => entries,
                Ok(Value::Nil) => Vec::new(),
                Ok(other) => return Err(anyhow!("XRANGE replied {other}")),
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                if let Some((id, record)) = message_record(&key, entry) {
                    self.last_id = Some(id);
                    out.push(record);
                }
            }
            if out.is_empty() {
                self.current += 1;
                self.last_id = None;
                continue;
            }
            return Ok(Some(out));
        }
    }
}
