//! MessagePack from the host as a [`Value`], read straight from the slice.
//!
//! Why: `rmpv::decode::read_value` goes through `std::io::Read` (a `take` and a
//! `read_to_end` per str, an error value built and dropped on the way); every batch of
//! records and every `execute()` reply is decoded, so that showed per record. This reader
//! only handles what it is sure of: whenever it returns a value, rmpv returns the same
//! one (the tests compare them); on anything else (truncated or invalid input, text that
//! is not UTF-8, nesting deeper than `MAX_DEPTH`) it returns None and the caller asks
//! rmpv, which gives its usual value or error. Trailing bytes are ignored, as by rmpv.

use rmpv::{Utf8String, Value};

/// Deeper values are left to rmpv (whose own limit is higher).
const MAX_DEPTH: usize = 128;

struct Bytes<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A big-endian length of `width` bytes.
    fn len(&mut self, width: usize) -> Option<usize> {
        let b = self.take(width)?;
        Some(b.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    }

    /// The most items `n` can honestly be: each takes at least one byte.
    fn capacity(&self, n: usize) -> usize {
        n.min(self.buf.len().saturating_sub(self.pos))
    }

    fn text(&mut self, n: usize) -> Option<Value> {
        let s = std::str::from_utf8(self.take(n)?).ok()?;
        Some(Value::String(Utf8String::from(s)))
    }

    fn bin(&mut self, n: usize) -> Option<Value> {
        Some(Value::Binary(self.take(n)?.to_vec()))
    }

    fn ext(&mut self, n: usize) -> Option<Value> {
        let ty = i8::from_be_bytes(self.fixed()?);
        Some(Value::Ext(ty, self.take(n)?.to_vec()))
    }

    fn seq(&mut self, n: usize, depth: usize) -> Option<Value> {
        let mut items = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Some(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Option<Value> {
        let mut pairs = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            pairs.push((k, v));
        }
        Some(Value::Map(pairs))
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let [m] = self.fixed()?;
        Some(match m {
            0x00..=0x7f => Value::from(m),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.seq(usize::from(m & 0x0f), depth)?,
            0xa0..=0xbf => self.text(usize::from(m & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 => self.len(1).and_then(|n| self.bin(n))?,
            0xc5 => self.len(2).and_then(|n| self.bin(n))?,
            0xc6 => self.len(4).and_then(|n| self.bin(n))?,
            0xc7 => self.len(1).and_then(|n| self.ext(n))?,
            0xc8 => self.len(2).and_then(|n| self.ext(n))?,
            0xc9 => self.len(4).and_then(|n| self.ext(n))?,
            0xca => Value::F32(f32::from_be_bytes(self.fixed()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.fixed()?)),
            0xcc => Value::from(u8::from_be_bytes(self.fixed()?)),
            0xcd => Value::from(u16::from_be_bytes(self.fixed()?)),
            0xce => Value::from(u32::from_be_bytes(self.fixed()?)),
            0xcf => Value::from(u64::from_be_bytes(self.fixed()?)),
            0xd0 => Value::from(i8::from_be_bytes(self.fixed()?)),
            0xd1 => Value::from(i16::from_be_bytes(self.fixed()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.fixed()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.fixed()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => self.len(1).and_then(|n| self.text(n))?,
            0xda => self.len(2).and_then(|n| self.text(n))?,
            0xdb => self.len(4).and_then(|n| self.text(n))?,
            0xdc => self.len(2).and_then(|n| self.seq(n, depth))?,
            0xdd => self.len(4).and_then(|n| self.seq(n, depth))?,
            0xde => self.len(2).and_then(|n| self.map(n, depth))?,
            0xdf => self.len(4).and_then(|n| self.map(n, depth))?,
            0xe0..=0xff => Value::from(m as i8),
            // 0xc1 is never used
            _ => return None,
        })
    }
}

/// The first value of `bytes`, or None where rmpv must decide.
pub(crate) fn value(bytes: &[u8]) -> Option<Value> {
    Bytes { buf: bytes, pos: 0 }.value(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rmpv_decode(bytes: &[u8]) -> Option<Value> {
        rmpv::decode::read_value(&mut &bytes[..]).ok()
    }

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    /// Whenever this reader answers, rmpv gives the same value (compared by encoding,
    /// so that NaN compares too).
    fn agrees(bytes: &[u8]) {
        if let Some(v) = value(bytes) {
            let theirs = rmpv_decode(bytes).expect("rmpv decodes what we decode");
            assert_eq!(encoded(&v), encoded(&theirs), "{bytes:02x?}");
        }
    }

    fn samples() -> Vec<Value> {
        let ints = [
            0i64, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129,
        ];
        let mut vs: Vec<Value> = ints.iter().map(|&i| Value::from(i)).collect();
        vs.extend([
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::from(u32::MAX as u64 + 1),
            Value::Nil,
            Value::Boolean(true),
            Value::Boolean(false),
            Value::F32(1.5),
            Value::F64(-2.25),
            Value::F64(f64::NAN),
            Value::from(""),
            Value::from("héllo"),
            Value::from("x".repeat(31)),
            Value::from("y".repeat(300)),
            Value::from("z".repeat(70000)),
            Value::Binary(vec![0, 255, 1]),
            Value::Binary(vec![7; 300]),
            Value::Binary(vec![8; 70000]),
            Value::Ext(1, b"ERR x".to_vec()),
            Value::Ext(-3, vec![1]),
            Value::Ext(5, vec![1, 2]),
            Value::Ext(5, vec![0; 4]),
            Value::Ext(5, vec![0; 8]),
            Value::Ext(5, vec![0; 16]),
            Value::Ext(5, vec![0; 300]),
            Value::Array((0..20).map(Value::from).collect()),
            Value::Array((0..70000).map(|_| Value::Nil).collect()),
            Value::Map(vec![(Value::from("key"), Value::from("v"))]),
            Value::Map((0..20).map(|i| (Value::from(i), Value::Nil)).collect()),
        ]);
        let nested = vs.clone();
        vs.push(Value::Array(nested));
        vs
    }

    #[test]
    fn decodes_what_rmpv_decodes() {
        for v in samples() {
            let bytes = encoded(&v);
            assert!(value(&bytes).is_some(), "{v:?}");
            agrees(&bytes);
        }
    }

    #[test]
    fn truncated_input_and_trailing_bytes_agree() {
        for v in samples() {
            let bytes = encoded(&v);
            for cut in 0..bytes.len().min(400) {
                agrees(&bytes[..cut]);
            }
            let mut more = bytes.clone();
            more.extend([0xc0, 0x01]);
            agrees(&more);
        }
    }

    #[test]
    fn leaves_hard_cases_to_rmpv() {
        assert!(value(&[0xa2, 0xff, 0xfe]).is_none()); // not UTF-8
        assert!(value(&[0xc1]).is_none());
        assert!(value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_none()); // huge array, no items
        let deep: Vec<u8> = std::iter::repeat_n(0x91u8, 500).chain([0xc0]).collect();
        assert!(value(&deep).is_none());
        agrees(&deep);
    }

    #[test]
    fn random_bytes_agree() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20000 {
            let len = (seed % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            agrees(&bytes);
        }
    }
}
