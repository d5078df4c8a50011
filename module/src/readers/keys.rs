//! KeysReader and KeysOnlyReader: the keyspace, by SCAN or one key name.

use std::collections::VecDeque;

use anyhow::{anyhow, Result};

use super::redis_call;
use crate::engine::reader::Reader;
use crate::engine::value::Value;
use crate::redis::fast::{self, KeyType};
use crate::redis::lock;

/// How the pattern is found (the KeysOnlyReader's patternGenerator runs on the shard).
pub type PatternSource = Box<dyn FnOnce() -> Result<String> + Send>;

pub struct KeysReader {
    pattern: Option<String>,
    source: Option<PatternSource>,
    no_scan: bool,
    /// KeysReader reads values; KeysOnlyReader gives key names.
    records: RecordShape,
    scan_count: Option<usize>,
    cursor: Option<String>,
    done: bool,
    /// Keys SCAN returned that did not fit the last batch.
    pending: VecDeque<String>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum RecordShape {
    /// KeysReader: `{'key', 'value', 'type', 'event'}`.
    WithValue,
    /// KeysReader with readValue=False: `{'key', 'event'}`.
    KeyAndEvent,
    /// KeysOnlyReader: the key name.
    Name,
}

impl KeysReader {
    pub fn new(
        pattern: String,
        no_scan: bool,
        records: RecordShape,
        scan_count: Option<usize>,
    ) -> Self {
        KeysReader {
            pattern: Some(pattern),
            source: None,
            no_scan,
            records,
            scan_count,
            cursor: None,
            done: false,
            pending: VecDeque::new(),
        }
    }

    pub fn with_generator(source: PatternSource, no_scan: bool, scan_count: Option<usize>) -> Self {
        KeysReader {
            pattern: None,
            source: Some(source),
            no_scan,
            records: RecordShape::Name,
            scan_count,
            cursor: None,
            done: false,
            pending: VecDeque::new(),
        }
    }

    fn pattern(&mut self) -> Result<String> {
        if let Some(source) = self.source.take() {
            self.pattern = Some(source()?);
        }
        self.pattern.clone().ok_or_else(|| anyhow!("no pattern"))
    }

    /// The record of `key` (moved into it: one allocation less per key of a scan).
    fn record(&self, key: String) -> Result<Option<Value>> {
        let event = (Value::str("event"), Value::Nil);
        Ok(Some(match self.records {
            RecordShape::Name => Value::Str(key),
            RecordShape::KeyAndEvent => {
                Value::Map(vec![(Value::str("key"), Value::Str(key)), event])
            }
            RecordShape::WithValue => {
                let Some((type_name, value)) = read_value(&key)? else {
                    return Ok(None);
                };
                Value::Map(vec![
                    (Value::str("key"), Value::Str(key)),
                    (Value::str("value"), value),
                    (Value::str("type"), Value::str(type_name)),
                    event,
                ])
            }
        }))
    }
}

/// The type and value of a key as the KeysReader shows them; None when it is gone.
pub fn read_value(key: &str) -> Result<Option<(String, Value)>> {
    let k = key.as_bytes();
    lock::ensure_locked();
    let type_name = match fast::key_type(&lock::context(), k) {
        KeyType::Missing => return Ok(None),
        KeyType::Builtin(name) => name.to_string(),
        KeyType::Module => match redis_call(&[b"TYPE", k])? {
            Value::Str(t) => t,
            other => return Err(anyhow!("TYPE replied {other}")),
        },
    };
    let value = match type_name.as_str() {
        "none" => return Ok(None),
        "string" => redis_call(&[b"GET", k])?,
        "hash" => match redis_call(&[b"HGETALL", k])? {
            Value::List(flat) => pairs(flat),
            m @ Value::Map(_) => m,
            other => other,
        },
        "list" => redis_call(&[b"LRANGE", k, b"0", b"-1"])?,
        _ => Value::Nil,
    };
    Ok(Some((type_name, value)))
}

/// A flat `[k1, v1, k2, v2...]` reply as a map.
pub fn pairs(flat: Vec<Value>) -> Value {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Value::Map(out)
}

impl Reader for KeysReader {
    fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Value>>> {
        if self.done && self.pending.is_empty() {
            return Ok(None);
        }
        let pattern = self.pattern()?;
        let mut out = Vec::new();
        if self.no_scan {
            self.done = true;
            match self.record(pattern.clone())? {
                Some(r) => {
                    let exists = self.records == RecordShape::WithValue
                        || matches!(redis_call(&[b"EXISTS", pattern.as_bytes()])?, Value::Int(1));
                    if exists {
                        out.push(r);
                    }
                }
                // As RedisGears 1.2: the one key asked for, missing, is a record of type
                // 'empty' with no value.
                None if self.records == RecordShape::WithValue => out.push(Value::Map(vec![
                    (Value::str("key"), Value::Str(pattern.clone())),
                    (Value::str("value"), Value::Nil),
                    (Value::str("type"), Value::str("empty")),
                    (Value::str("event"), Value::Nil),
                ])),
                None => {}
            }
            return Ok(if out.is_empty() { None } else { Some(out) });
        }
        let count = self.scan_count.unwrap_or(max).max(1).to_string();
        while out.len() < max {
            if let Some(key) = self.pending.pop_front() {
                if let Some(r) = self.record(key)? {
                    out.push(r);
                }
                continue;
            }
            if self.done {
                break;
            }
            let cursor = self.cursor.clone().unwrap_or_else(|| "0".into());
            let reply = redis_call(&[
                b"SCAN",
                cursor.as_bytes(),
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                count.as_bytes(),
            ])?;
            let Value::List(mut parts) = reply else {
                return Err(anyhow!("SCAN replied {reply}"));
            };
            let (Some(Value::List(keys)), Some(Value::Str(next))) = (parts.pop(), parts.pop())
            else {
                return Err(anyhow!("SCAN replied an unexpected shape"));
            };
            if next == "0" {
                self.done = true;
            }
            self.cursor = Some(next);
            self.pending
                .extend(keys.into_iter().filter_map(|key| match key {
                    Value::Str(s) => Some(s),
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                }));
        }
        Ok(if out.is_empty() && self.done && self.pending.is_empty() {
            None
        } else {
            Some(out)
        })
    }
}
