//! Values as MessagePack: the one encoding of records wherever they cross a boundary (into
//! a guest, guest-sdk/wit/ENCODING.md; between shards) and of plans as bytes.

use anyhow::{anyhow, bail, Result};
use rmp::Marker;

use std::sync::Arc;

use crate::engine::value::{Tag, Tagged, Value};

/// The ext type that carries an error element of an array reply.
const EXT_ERROR: i8 = 1;
/// Ext types of a tagged sequence between shards (a Python tuple, a set): the payload is
/// the MessagePack array of its items.
const EXT_TUPLE: i8 = 2;
const EXT_SET: i8 = 3;

/// Deepest nesting accepted from a guest (a hostile guest must not overflow our stack).
const MAX_DEPTH: usize = 128;

pub fn encode(v: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail; the results are ignored for that reason.
    match v {
        Value::Nil => {
            let _ = rmp::encode::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
        Value::Int(i) => {
            let _ = rmp::encode::write_sint(out, *i);
        }
        Value::Float(f) => {
            let _ = rmp::encode::write_f64(out, *f);
        }
        Value::Str(s) | Value::Status(s) => {
            let _ = rmp::encode::write_str(out, s);
        }
        Value::Bytes(b) => {
            let _ = rmp::encode::write_bin(out, b);
        }
        Value::List(items) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                encode(item, out);
            }
        }
        Value::Map(pairs) => {
            let _ = rmp::encode::write_map_len(out, pairs.len() as u32);
            for (k, v) in pairs {
                encode(k, out);
                encode(v, out);
            }
        }
        Value::Error(e) => {
            let _ = rmp::encode::write_ext_meta(out, e.len() as u32, EXT_ERROR);
            out.extend_from_slice(e.as_bytes());
        }
        Value::Host(h) => match h.as_any().downcast_ref::<Tagged>() {
            Some(t) => {
                let inner = encode_one(&t.items);
                let ty = match t.tag {
                    Tag::Tuple => EXT_TUPLE,
                    Tag::Set => EXT_SET,
                };
                let _ = rmp::encode::write_ext_meta(out, inner.len() as u32, ty);
                out.extend_from_slice(&inner);
            }
            // A host object of another language never reaches a guest: its reply form.
            None => encode(&h.to_reply(), out),
        },
    }
}

/// A batch of records as one MessagePack array.
pub fn encode_batch(records: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + records.len() * 32);
    let _ = rmp::encode::write_array_len(&mut out, records.len() as u32);
    for r in records {
        encode(r, &mut out);
    }
    out
}

pub fn encode_one(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| anyhow!("truncated MessagePack value"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn text(&mut self, n: usize) -> Result<Value> {
        let bytes = self.take(n)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        })
    }

    fn items(&mut self, n: usize, depth: usize) -> Result<Vec<Value>> {
        // Each item takes at least one byte: a bogus length cannot make us allocate.
        let mut items = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(items)
    }

    fn pairs(&mut self, n: usize, depth: usize) -> Result<Value> {
        let mut pairs = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }

    fn ext(&mut self, n: usize, depth: usize) -> Result<Value> {
        let ty = self.take(1)?[0] as i8;
        let data = self.take(n)?;
        if ty == EXT_ERROR {
            return Ok(Value::Error(String::from_utf8_lossy(data).into_owned()));
        }
        let tag = match ty {
            EXT_TUPLE => Tag::Tuple,
            EXT_SET => Tag::Set,
            _ => bail!("unknown MessagePack ext type {ty}"),
        };
        let mut inner = Reader { buf: data, pos: 0 };
        let items = inner.value(depth + 1)?;
        if inner.pos != data.len() || !matches!(items, Value::List(_)) {
            bail!("a bad tagged sequence");
        }
        Ok(Value::Host(Arc::new(Tagged { tag, items })))
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            bail!("value nested deeper than {MAX_DEPTH} levels");
        }
        let marker = Marker::from_u8(self.take(1)?[0]);
        Ok(match marker {
            Marker::Null => Value::Nil,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::FixPos(n) => Value::Int(i64::from(n)),
            Marker::FixNeg(n) => Value::Int(i64::from(n)),
            Marker::U8 => Value::Int(self.be(1)? as i64),
            Marker::U16 => Value::Int(self.be(2)? as i64),
            Marker::U32 => Value::Int(self.be(4)? as i64),
            Marker::U64 => {
                let u = self.be(8)?;
                i64::try_from(u)
                    .map(Value::Int)
                    .unwrap_or(Value::Float(u as f64))
            }
            Marker::I8 => Value::Int(i64::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Value::Int(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Value::Int(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Value::Int(self.be(8)? as i64),
            Marker::F32 => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Value::Float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => self.text(usize::from(n))?,
            Marker::Str8 => {
                let n = self.be(1)? as usize;
                self.text(n)?
            }
            Marker::Str16 => {
                let n = self.be(2)? as usize;
                self.text(n)?
            }
            Marker::Str32 => {
                let n = self.be(4)? as usize;
                self.text(n)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let width = match marker {
                    Marker::Bin8 => 1,
                    Marker::Bin16 => 2,
                    _ => 4,
                };
                let n = self.be(width)? as usize;
                Value::Bytes(self.take(n)?.to_vec())
            }
            Marker::FixArray(n) => Value::List(self.items(usize::from(n), depth)?),
            Marker::Array16 => {
                let n = self.be(2)? as usize;
                Value::List(self.items(n, depth)?)
            }
            Marker::Array32 => {
                let n = self.be(4)? as usize;
                Value::List(self.items(n, depth)?)
            }
            Marker::FixMap(n) => self.pairs(usize::from(n), depth)?,
            Marker::Map16 => {
                let n = self.be(2)? as usize;
                self.pairs(n, depth)?
            }
            Marker::Map32 => {
                let n = self.be(4)? as usize;
                self.pairs(n, depth)?
            }
            Marker::FixExt1 => self.ext(1, depth)?,
            Marker::FixExt2 => self.ext(2, depth)?,
            Marker::FixExt4 => self.ext(4, depth)?,
            Marker::FixExt8 => self.ext(8, depth)?,
            Marker::FixExt16 => self.ext(16, depth)?,
            Marker::Ext8 => {
                let n = self.be(1)? as usize;
                self.ext(n, depth)?
            }
            Marker::Ext16 => {
                let n = self.be(2)? as usize;
                self.ext(n, depth)?
            }
            Marker::Ext32 => {
                let n = self.be(4)? as usize;
                self.ext(n, depth)?
            }
            Marker::Reserved => bail!("invalid MessagePack marker"),
        })
    }
}

/// One value; trailing bytes are an error.
pub fn decode(buf: &[u8]) -> Result<Value> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    if r.pos != buf.len() {
        bail!("{} bytes after the MessagePack value", buf.len() - r.pos);
    }
    Ok(v)
}

/// A batch: one MessagePack array of records.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<Value>> {
    match decode(buf)? {
        Value::List(items) => Ok(items),
        _ => bail!("a batch must be a MessagePack array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_sequences_keep_their_tag() {
        let tuple = Value::Host(Arc::new(Tagged {
            tag: Tag::Tuple,
            items: Value::List(vec![Value::Int(1), Value::str("a")]),
        }));
        let back = decode(&encode_one(&Value::List(vec![tuple]))).unwrap();
        let Value::List(items) = back else {
            panic!("not a list")
        };
        let Value::Host(h) = &items[0] else {
            panic!("not tagged")
        };
        let t = h.as_any().downcast_ref::<Tagged>().unwrap();
        assert_eq!(t.tag, Tag::Tuple);
        assert_eq!(
            t.items
                .total_cmp(&Value::List(vec![Value::Int(1), Value::str("a")])),
            std::cmp::Ordering::Equal
        );
        // An ext type that is not an array inside is refused.
        assert!(decode(&[0xd4, EXT_SET as u8, 0x01]).is_err());
    }

    fn round(v: Value) -> Value {
        decode(&encode_one(&v)).unwrap()
    }

    #[test]
    fn every_kind_round_trips() {
        let v = Value::List(vec![
            Value::Nil,
            Value::Bool(true),
            Value::Int(-5),
            Value::Int(300),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(2.5),
            Value::str("héllo"),
            Value::Bytes(vec![0xff, 0, 1]),
            Value::Map(vec![(Value::str("a"), Value::Int(1))]),
            Value::Error("ERR x".into()),
        ]);
        assert_eq!(format!("{:?}", round(v.clone())), format!("{v:?}"));
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err()); // huge array, no items
        assert!(decode(&[0xc1]).is_err());
        assert!(decode(&[0x91, 0x01, 0x02]).is_err()); // trailing byte
        let deep: Vec<u8> = std::iter::repeat_n(0x91u8, 1000).chain([0xc0]).collect();
        assert!(decode(&deep).is_err());
    }
}
