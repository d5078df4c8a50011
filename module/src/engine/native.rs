//! The steps that need no user code, in Rust: limit, count, countby, distinct, avg, sort.

use std::collections::HashMap;
use std::time::Instant;

use super::operator::{Operator, RunCtx, Stop};
use super::plan::NativeStep;
use super::value::Value;

/// Builds the operator of one native step.
pub fn operator(step: &NativeStep) -> Box<dyn Operator> {
    let state = match step {
        NativeStep::Limit { offset, length } => State::Limit {
            skip: *offset,
            left: *length,
        },
        NativeStep::LocalCount => State::Count(0),
        NativeStep::SumCounts => State::Sum(0),
        NativeStep::LocalCountBy => State::CountBy(Groups::default()),
        NativeStep::SumCountsBy => State::SumBy(Groups::default()),
        NativeStep::Distinct => State::Distinct(Groups::default()),
        NativeStep::LocalAvg => State::Avg {
            sum: 0.0,
            count: 0,
            partials: false,
        },
        NativeStep::FinalAvg => State::Avg {
            sum: 0.0,
            count: 0,
            partials: true,
        },
        NativeStep::Sort { reverse } => State::Sort {
            reverse: *reverse,
            all: Vec::new(),
        },
    };
    Box::new(NativeOp { state, nanos: 0 })
}

/// Keys in first-seen order with an integer each.
#[derive(Default)]
struct Groups {
    index: HashMap<Value, usize>,
    entries: Vec<(Value, i64)>,
}

impl Groups {
    fn add(&mut self, key: Value, n: i64) {
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 += n,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, n));
            }
        }
    }
}

enum State {
    Limit {
        skip: usize,
        left: usize,
    },
    Count(i64),
    Sum(i64),
    CountBy(Groups),
    SumBy(Groups),
    Distinct(Groups),
    /// `partials`: inputs are `[sum, count]` pairs from LocalAvg rather than numbers.
    Avg {
        sum: f64,
        count: i64,
        partials: bool,
    },
    Sort {
        reverse: bool,
        all: Vec<Value>,
    },
}

struct NativeOp {
    state: State,
    nanos: u64,
}

impl NativeOp {
    fn push_inner(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Vec<Value> {
        match &mut self.state {
            State::Limit { skip, left } => {
                let mut out = Vec::new();
                for record in batch {
                    if *skip > 0 {
                        *skip -= 1;
                    } else if *left > 0 {
                        *left -= 1;
                        out.push(record);
                    } else {
                        break;
                    }
                }
                out
            }
            State::Count(n) => {
                *n += batch.len() as i64;
                Vec::new()
            }
            State::Sum(n) => {
                for v in batch {
                    match v {
                        Value::Int(i) => *n += i,
                        other => cx
                            .errors
                            .push(format!("count: not a partial count: {other}")),
                    }
                }
                Vec::new()
            }
            State::CountBy(groups) => {
                batch.into_iter().for_each(|key| groups.add(key, 1));
                Vec::new()
            }
            State::SumBy(groups) => {
                for record in batch {
                    match (record.get("key"), record.get("value")) {
                        (Some(k), Some(Value::Int(n))) => groups.add(k.clone(), *n),
                        _ => cx
                            .errors
                            .push(format!("countby: not a partial count: {record}")),
                    }
                }
                Vec::new()
            }
            State::Distinct(groups) => {
                batch.into_iter().for_each(|v| groups.add(v, 0));
                Vec::new()
            }
            State::Avg {
                sum,
                count,
                partials,
            } => {
                for v in batch {
                    match (&v, *partials) {
                        (Value::List(p), true) if p.len() == 2 => {
                            *sum += p[0].as_f64().unwrap_or(0.0);
                            *count += p[1].as_f64().unwrap_or(0.0) as i64;
                        }
                        (_, false) => match v.as_f64() {
                            Some(x) => {
                                *sum += x;
                                *count += 1;
                            }
                            None => cx.errors.push(format!("avg: not a number: {v}")),
                        },
                        _ => cx.errors.push(format!("avg: not a partial average: {v}")),
                    }
                }
                Vec::new()
            }
            State::Sort { all, .. } => {
                all.extend(batch);
                Vec::new()
            }
        }
    }

    fn finish_inner(&mut self) -> Vec<Value> {
        match &mut self.state {
            State::Limit { .. } => Vec::new(),
            State::Count(n) | State::Sum(n) => vec![Value::Int(std::mem::take(n))],
            State::CountBy(groups) | State::SumBy(groups) => std::mem::take(&mut groups.entries)
                .into_iter()
                .map(|(k, n)| Value::key_value(k, Value::Int(n)))
                .collect(),
            State::Distinct(groups) => std::mem::take(&mut groups.entries)
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
            State::Avg {
                sum,
                count,
                partials,
            } => {
                if *count == 0 {
                    Vec::new()
                } else if *partials {
                    vec![Value::Float(*sum / *count as f64)]
                } else {
                    vec![Value::List(vec![Value::Float(*sum), Value::Int(*count)])]
                }
            }
            State::Sort { reverse, all } => {
                let mut all = std::mem::take(all);
                all.sort_by(|a, b| a.total_cmp(b));
                if *reverse {
                    all.reverse();
                }
                all
            }
        }
    }
}

impl Operator for NativeOp {
    fn push(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        let t = cx.profile.then(Instant::now);
        let out = self.push_inner(cx, batch);
        if let Some(t) = t {
            self.nanos += t.elapsed().as_nanos() as u64;
        }
        Ok(out)
    }

    fn finish(&mut self, cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        let t = cx.profile.then(Instant::now);
        let out = self.finish_inner();
        if let Some(t) = t {
            self.nanos += t.elapsed().as_nanos() as u64;
        }
        Ok(out)
    }

    fn step_nanos(&self) -> Vec<u64> {
        vec![self.nanos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(step: NativeStep, batches: Vec<Vec<Value>>) -> Vec<Value> {
        let mut op = operator(&step);
        let mut cx = RunCtx::new(false);
        let mut out = Vec::new();
        for b in batches {
            out.extend(op.push(&mut cx, b).unwrap());
        }
        out.extend(op.finish(&mut cx).unwrap());
        assert!(cx.errors.is_empty(), "{:?}", cx.errors);
        out
    }

    fn ints(v: &[i64]) -> Vec<Value> {
        v.iter().map(|i| Value::Int(*i)).collect()
    }

    #[test]
    fn limit_spans_batches() {
        let out = run(
            NativeStep::Limit {
                offset: 2,
                length: 3,
            },
            vec![ints(&[1, 2, 3]), ints(&[4, 5, 6])],
        );
        assert_eq!(out, ints(&[3, 4, 5]));
    }

    #[test]
    fn count_of_nothing_is_zero() {
        assert_eq!(run(NativeStep::LocalCount, vec![]), ints(&[0]));
        assert_eq!(run(NativeStep::SumCounts, vec![ints(&[2, 3])]), ints(&[5]));
    }

    #[test]
    fn countby_then_sum_keeps_first_seen_order() {
        let keys = vec![Value::str("b"), Value::str("a"), Value::str("b")];
        let partial = run(NativeStep::LocalCountBy, vec![keys]);
        let total = run(NativeStep::SumCountsBy, vec![partial.clone(), partial]);
        assert_eq!(
            total,
            vec![
                Value::key_value(Value::str("b"), Value::Int(4)),
                Value::key_value(Value::str("a"), Value::Int(2)),
            ]
        );
    }

    #[test]
    fn avg_of_partials() {
        let p1 = run(NativeStep::LocalAvg, vec![ints(&[1, 2])]);
        let p2 = run(NativeStep::LocalAvg, vec![ints(&[6])]);
        assert_eq!(
            run(NativeStep::FinalAvg, vec![p1, p2]),
            vec![Value::Float(3.0)]
        );
        assert!(run(NativeStep::FinalAvg, vec![]).is_empty());
    }

    #[test]
    fn sort_and_distinct() {
        assert_eq!(
            run(NativeStep::Sort { reverse: true }, vec![ints(&[2, 9, 1])]),
            ints(&[9, 2, 1])
        );
        assert_eq!(
            run(NativeStep::Distinct, vec![ints(&[2, 2, 1]), ints(&[1, 3])]),
            ints(&[2, 1, 3])
        );
    }
}
