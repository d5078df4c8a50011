//! The steps the module runs itself (module/src/engine/native.rs), over records as the
//! module's engine sees them: what the guest outputs is decoded by the host (engine
//! values) before a native step or another fused run sees it, so equality, order and
//! numbers follow the engine's rules, not rmpv's.

use std::cmp::Ordering;
use std::collections::HashMap;

use rmpv::Value;

/// A native step of an expanded plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NativeStep {
    Limit { offset: usize, length: usize },
    LocalCount,
    SumCounts,
    LocalCountBy,
    SumCountsBy,
    Distinct,
    LocalAvg,
    FinalAvg,
    Sort { reverse: bool },
}

/// A value as the host's codec decodes it (module/src/engine/codec.rs): integers above
/// i64 become floats, f32 becomes f64, a str that is not UTF-8 becomes bin.
pub(crate) fn engine(v: Value) -> Value {
    match v {
        Value::Integer(i) if i.as_i64().is_none() => Value::F64(i.as_f64().unwrap_or(0.0)),
        Value::F32(f) => Value::F64(f64::from(f)),
        Value::String(s) if !s.is_str() => Value::Binary(s.into_bytes()),
        Value::Array(items) => Value::Array(items.into_iter().map(engine).collect()),
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (engine(k), engine(v)))
                .collect(),
        ),
        other => other,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => i.as_f64(),
        Value::F64(f) => Some(*f),
        Value::F32(f) => Some(f64::from(*f)),
        Value::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// The engine's `as_f64`: numbers, bools, and strings that parse as numbers (avg).
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.as_str().and_then(|s| s.trim().parse().ok()),
        other => number(other),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Nil => 0,
        Value::Boolean(_) | Value::Integer(_) | Value::F32(_) | Value::F64(_) => 1,
        Value::String(_) => 2,
        Value::Binary(_) => 3,
        Value::Array(_) => 4,
        Value::Map(_) => 5,
        Value::Ext(1, _) => 6,
        Value::Ext(..) => 7,
    }
}

/// The engine's total order (sort): numbers by value, then strings, bytes, lists and
/// maps element-wise; values of different kinds by kind.
pub(crate) fn total_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) if x.as_i64().is_some() && y.as_i64().is_some() => {
            x.as_i64().cmp(&y.as_i64())
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Binary(x), Value::Binary(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => seq(x.iter(), y.iter()),
        (Value::Map(x), Value::Map(y)) => seq(
            x.iter().flat_map(|(k, v)| [k, v]),
            y.iter().flat_map(|(k, v)| [k, v]),
        ),
        (Value::Ext(_, x), Value::Ext(_, y)) if rank(a) == rank(b) => x.cmp(y),
        _ if rank(a) == 1 && rank(b) == 1 => {
            let (x, y) = (number(a).unwrap_or(0.0), number(b).unwrap_or(0.0));
            x.total_cmp(&y)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn seq<'a>(
    mut a: impl Iterator<Item = &'a Value>,
    mut b: impl Iterator<Item = &'a Value>,
) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match total_cmp(x, y) {
                Ordering::Equal => continue,
                other => return other,
            },
        }
    }
}

/// The bytes two values share when the engine holds them equal (countby, distinct):
/// `1`, `1.0` and `true` are one key, as in Python.
fn key(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0),
        Value::String(s) => {
            out.push(3);
            out.extend_from_slice(&(s.as_bytes().len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Binary(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            out.push(5);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| key(i, out));
        }
        Value::Map(pairs) => {
            out.push(6);
            out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
            for (k, v) in pairs {
                key(k, out);
                key(v, out);
            }
        }
        Value::Ext(t, data) => {
            out.extend_from_slice(&[7, *t as u8]);
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
        }
        Value::Integer(i) if i.as_i64().is_some_and(|n| n.unsigned_abs() >= 1 << 53) => {
            out.push(1);
            out.extend_from_slice(&i.as_i64().unwrap_or(0).to_le_bytes());
        }
        number => {
            let f = as_f64(number).unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                out.push(1);
                out.extend_from_slice(&(f as i64).to_le_bytes());
            } else {
                out.push(2);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
    }
}

/// Values in first-seen order with an integer each, equal values (by [`key`]) merged.
#[derive(Default)]
struct Groups {
    index: HashMap<Vec<u8>, usize>,
    entries: Vec<(Value, i64)>,
}

impl Groups {
    fn add(&mut self, v: Value, n: i64) {
        let mut k = Vec::new();
        key(&v, &mut k);
        match self.index.get(&k) {
            Some(&i) => self.entries[i].1 += n,
            None => {
                self.index.insert(k, self.entries.len());
                self.entries.push((v, n));
            }
        }
    }
}

/// `{'key': k, 'value': v}`.
pub(crate) fn kv(k: Value, v: Value) -> Value {
    Value::Map(vec![(Value::from("key"), k), (Value::from("value"), v)])
}

/// The entry of a map under a string key (the engine's `Value::get`).
fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A value's text as the module's errors show it (Python-like: `'a'`, `None`, `[1, 2]`).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Nil => "None".into(),
        Value::Boolean(b) => (if *b { "True" } else { "False" }).into(),
        Value::Integer(i) => i.to_string(),
        Value::F32(_) | Value::F64(_) => float(number(v).unwrap_or(0.0)),
        Value::String(s) => match s.as_str() {
            Some(s) => format!("'{s}'"),
            None => format!("b'{}'", String::from_utf8_lossy(s.as_bytes())),
        },
        Value::Binary(b) => format!("b'{}'", String::from_utf8_lossy(b)),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", text(k), text(v)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Value::Ext(1, e) => format!("Error('{}')", String::from_utf8_lossy(e)),
        Value::Ext(t, _) => format!("<ext {t}>"),
    }
}

/// Float text as Python's repr gives it for the common cases.
fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        (if x > 0.0 { "inf" } else { "-inf" }).into()
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// A native step with its state, as the module's operator.
pub(crate) struct NativeOp {
    step: NativeStep,
    limit: (usize, usize),
    n: i64,
    groups: Groups,
    avg: (f64, i64),
    all: Vec<Value>,
}

impl NativeOp {
    pub(crate) fn new(step: NativeStep) -> NativeOp {
        let limit = match step {
            NativeStep::Limit { offset, length } => (offset, length),
            _ => (0, 0),
        };
        NativeOp {
            step,
            limit,
            n: 0,
            groups: Groups::default(),
            avg: (0.0, 0),
            all: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, batch: Vec<Value>, errors: &mut Vec<String>) -> Vec<Value> {
        match self.step {
            NativeStep::Limit { .. } => {
                let (skip, left) = &mut self.limit;
                let mut out = Vec::new();
                for r in batch {
                    if *skip > 0 {
                        *skip -= 1;
                    } else if *left > 0 {
                        *left -= 1;
                        out.push(r);
                    } else {
                        break;
                    }
                }
                return out;
            }
            NativeStep::LocalCount => self.n += batch.len() as i64,
            NativeStep::SumCounts => {
                for v in batch {
                    match v.as_i64() {
                        Some(i) => self.n += i,
                        None => errors.push(format!("count: not a partial count: {}", text(&v))),
                    }
                }
            }
            NativeStep::LocalCountBy => batch.into_iter().for_each(|k| self.groups.add(k, 1)),
            NativeStep::SumCountsBy => {
                for r in batch {
                    match (get(&r, "key"), get(&r, "value").and_then(Value::as_i64)) {
                        (Some(k), Some(n)) => self.groups.add(k.clone(), n),
                        _ => errors.push(format!("countby: not a partial count: {}", text(&r))),
                    }
                }
            }
            NativeStep::Distinct => batch.into_iter().for_each(|v| self.groups.add(v, 0)),
            NativeStep::LocalAvg => {
                for v in batch {
                    match as_f64(&v) {
                        Some(x) => {
                            self.avg.0 += x;
                            self.avg.1 += 1;
                        }
                        None => errors.push(format!("avg: not a number: {}", text(&v))),
                    }
                }
            }
            NativeStep::FinalAvg => {
                for v in batch {
                    match &v {
                        Value::Array(p) if p.len() == 2 => {
                            self.avg.0 += as_f64(&p[0]).unwrap_or(0.0);
                            self.avg.1 += as_f64(&p[1]).unwrap_or(0.0) as i64;
                        }
                        _ => errors.push(format!("avg: not a partial average: {}", text(&v))),
                    }
                }
            }
            NativeStep::Sort { .. } => self.all.extend(batch),
        }
        Vec::new()
    }

    pub(crate) fn finish(&mut self) -> Vec<Value> {
        match self.step {
            NativeStep::Limit { .. } => Vec::new(),
            NativeStep::LocalCount | NativeStep::SumCounts => {
                vec![Value::from(std::mem::take(&mut self.n))]
            }
            NativeStep::LocalCountBy | NativeStep::SumCountsBy => std::mem::take(&mut self.groups)
                .entries
                .into_iter()
                .map(|(k, n)| kv(k, Value::from(n)))
                .collect(),
            NativeStep::Distinct => std::mem::take(&mut self.groups)
                .entries
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            NativeStep::LocalAvg | NativeStep::FinalAvg => {
                let (sum, count) = std::mem::take(&mut self.avg);
                if count == 0 {
                    Vec::new()
                } else if self.step == NativeStep::FinalAvg {
                    vec![Value::F64(sum / count as f64)]
                } else {
                    vec![Value::Array(vec![Value::F64(sum), Value::from(count)])]
                }
            }
            NativeStep::Sort { reverse } => {
                let mut all = std::mem::take(&mut self.all);
                all.sort_by(total_cmp);
                if reverse {
                    all.reverse();
                }
                all
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_numbers_are_one_key_and_sort_before_strings() {
        let mut g = Groups::default();
        g.add(Value::from(1), 1);
        g.add(Value::F64(1.0), 1);
        g.add(Value::Boolean(true), 1);
        g.add(Value::from("1"), 1);
        assert_eq!(g.entries, vec![(Value::from(1), 3), (Value::from("1"), 1)]);
        let mut v = vec![
            Value::from("b"),
            Value::from(3),
            Value::F64(1.5),
            Value::from("a"),
        ];
        v.sort_by(total_cmp);
        assert_eq!(
            v,
            vec![
                Value::F64(1.5),
                Value::from(3),
                Value::from("a"),
                Value::from("b")
            ]
        );
    }

    #[test]
    fn values_cross_as_the_engine_decodes_them() {
        assert_eq!(engine(Value::from(u64::MAX)), Value::F64(u64::MAX as f64));
        assert_eq!(engine(Value::F32(0.5)), Value::F64(0.5));
        let text_of = |v: Value| text(&v);
        assert_eq!(
            text_of(kv(Value::from("a"), Value::F64(2.0))),
            "{'key': 'a', 'value': 2.0}"
        );
    }
}
