//! Fused runs: the primitive steps the host hands a guest (WIT `fused-step`), run over
//! batches of records. Mirrors python-shim/gears/_fused.py:
//!
//! - each record goes depth-first through all the steps (record 1 leaves the last step
//!   before record 2 enters the first), so side effects of consecutive steps interleave
//!   per record;
//! - an error of a step function drops that record only (its text goes to the errors);
//!   the batch's other records and a flatmap's other children go on;
//! - accumulate starts at None, aggregate_local and aggregateby_* at a fresh copy of zero
//!   (per group); stateful steps emit at finish, in step order, each feeding the next;
//! - groups are kept in the order their keys were first seen, keys compared by their
//!   MessagePack encoding, and emitted as `{'key': k, 'value': v}` maps;
//! - a last step `combine_countby` or `combine_count` (contract 1.2) is the local half of
//!   countby / count run inside the guest: what leaves each push and finish is one
//!   partial per key (or one count), not one record per record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::mem;
use std::rc::Rc;

use rmpv::Value;

use crate::callbacks::{
    AccumulateFn, BatchReduceFn, Callback, FilterFn, FilterViewFn, FlatMapFn, FoldFn, ForeachFn,
    ForeachViewFn, KeyFoldFn, MapFn, MapViewFn, ReduceFn,
};
use crate::view::{self, View};

/// A primitive step as the host describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FusedSpec {
    pub(crate) op: String,
    pub(crate) callbacks: Vec<u32>,
    pub(crate) zero: Option<Value>,
}

enum Op {
    Map(Rc<MapFn>),
    MapView(Rc<MapViewFn>),
    FlatMap(Rc<FlatMapFn>),
    Filter(Rc<FilterFn>),
    FilterView(Rc<FilterViewFn>),
    Foreach(Rc<ForeachFn>),
    ForeachView(Rc<ForeachViewFn>),
    Accumulate(Rc<AccumulateFn>),
    AggregateLocal(Rc<FoldFn>, Value),
    LocalGroupBy(Rc<MapFn>, Rc<ReduceFn>),
    AggregateByLocal(Rc<MapFn>, Rc<KeyFoldFn>, Value),
    AggregateByGlobal(Rc<KeyFoldFn>, Value),
    BatchGroupByLocal(Rc<MapFn>, Rc<BatchReduceFn>),
}

/// Records in first-seen key order, looked up by the key's MessagePack encoding.
struct Groups<T> {
    index: HashMap<Vec<u8>, usize>,
    entries: Vec<(Value, T)>,
    scratch: Vec<u8>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            index: HashMap::new(),
            entries: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

impl<T> Groups<T> {
    /// The entry of `key`, if any; leaves the key's encoding in `scratch`.
    fn find(&mut self, key: &Value) -> Option<usize> {
        self.scratch.clear();
        rmpv::encode::write_value(&mut self.scratch, key).expect("writing to a Vec cannot fail");
        self.index.get(self.scratch.as_slice()).copied()
    }

    /// Adds a new entry for the key last given to `find`.
    fn insert(&mut self, key: Value, item: T) {
        self.index.insert(self.scratch.clone(), self.entries.len());
        self.entries.push((key, item));
    }

    fn take(&mut self) -> Vec<(Value, T)> {
        self.index.clear();
        mem::take(&mut self.entries)
    }
}

#[derive(Default)]
enum State {
    #[default]
    None,
    Acc(Option<Value>),
    Groups(Groups<Value>),
    Batches(Groups<Vec<Value>>),
}

/// What a push or a finish produced.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Out {
    pub(crate) records: Vec<Value>,
    pub(crate) errors: Vec<String>,
}

/// One fused run: its steps and their state.
pub(crate) struct FusedRun {
    ops: Vec<Op>,
    states: Vec<State>,
    combiner: Option<Combiner>,
}

/// The local half of a two-phase aggregate, run over what the steps output.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Combiner {
    /// `{'key': r, 'value': n}` per distinct string record, in first-seen order; any other
    /// record flushes the counts so far and goes out as its own partial (count 1), so the
    /// host's fold sees the order and grouping its own countby would.
    CountBy,
    /// The number of records, as one integer (nothing when there were none).
    Count,
}

impl Combiner {
    fn of(op: &str) -> Option<Combiner> {
        match op {
            "combine_countby" => Some(Combiner::CountBy),
            "combine_count" => Some(Combiner::Count),
            _ => None,
        }
    }

    fn combine(self, records: Vec<Value>) -> Vec<Value> {
        match self {
            Combiner::Count if records.is_empty() => Vec::new(),
            Combiner::Count => vec![Value::from(records.len() as i64)],
            Combiner::CountBy => {
                let mut out = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                let mut counts: Vec<(String, i64)> = Vec::new();
                let flush = |counts: &mut Vec<(String, i64)>,
                             index: &mut HashMap<String, usize>,
                             out: &mut Vec<Value>| {
                    index.clear();
                    out.extend(
                        counts
                            .drain(..)
                            .map(|(k, n)| kv(Value::from(k), Value::from(n))),
                    );
                };
                for r in records {
                    match r {
                        Value::String(s) if s.is_str() => {
                            let s = s.into_str().unwrap_or_default();
                            match index.get(&s) {
                                Some(&at) => counts[at].1 += 1,
                                None => {
                                    index.insert(s.clone(), counts.len());
                                    counts.push((s, 1));
                                }
                            }
                        }
                        other => {
                            flush(&mut counts, &mut index, &mut out);
                            out.push(kv(other, Value::from(1)));
                        }
                    }
                }
                flush(&mut counts, &mut index, &mut out);
                out
            }
        }
    }
}

/// The ops the host may send and the callback kinds each needs, in order.
const OPS: &[(&str, &[&str], bool)] = &[
    ("map", &["map"], false),
    ("flatmap", &["flatmap"], false),
    ("filter", &["filter"], false),
    ("foreach", &["foreach"], false),
    ("accumulate", &["accumulate"], false),
    ("localgroupby", &["extract (map)", "reduce"], false),
    ("aggregate_local", &["aggregate"], true),
    ("aggregateby_local", &["extract (map)", "aggregateby"], true),
    ("aggregateby_global", &["aggregateby"], true),
    (
        "batchgroupby_local",
        &["extract (map)", "batchgroupby reduce"],
        false,
    ),
];

fn kv(key: Value, value: Value) -> Value {
    Value::Map(vec![
        (Value::from("key"), key),
        (Value::from("value"), value),
    ])
}

impl FusedRun {
    /// Builds a run from the host's steps over the guest's callback table; fails with a
    /// clear message on an unknown op, a wrong number or kind of callbacks, or a
    /// missing zero.
    pub(crate) fn new(mut specs: Vec<FusedSpec>, table: &[Callback]) -> Result<FusedRun, String> {
        let combiner = specs.last().and_then(|s| Combiner::of(&s.op));
        if combiner.is_some() {
            specs.pop();
        }
        if let Some(i) = specs.iter().position(|s| Combiner::of(&s.op).is_some()) {
            return Err(format!(
                "fused step {i} ({}): a combiner must be the last step",
                specs[i].op
            ));
        }
        let mut ops = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let Some((_, kinds, needs_zero)) = OPS.iter().find(|(op, _, _)| *op == spec.op) else {
                return Err(format!(
                    "fused step {i}: unknown op '{}' (expected one of {})",
                    spec.op,
                    OPS.iter().map(|o| o.0).collect::<Vec<_>>().join(", ")
                ));
            };
            if spec.callbacks.len() != kinds.len() {
                return Err(format!(
                    "fused step {i} ({}): takes {} callback(s) [{}], got {}",
                    spec.op,
                    kinds.len(),
                    kinds.join(", "),
                    spec.callbacks.len()
                ));
            }
            let mut cbs = Vec::with_capacity(kinds.len());
            for (pos, &idx) in spec.callbacks.iter().enumerate() {
                let cb = table.get(idx as usize).ok_or_else(|| {
                    format!(
                        "fused step {i} ({}): callback {idx} does not exist (the guest has {})",
                        spec.op,
                        table.len()
                    )
                })?;
                cbs.push((pos, idx, cb));
            }
            let zero = match (needs_zero, spec.zero) {
                (true, None) => {
                    return Err(format!("fused step {i} ({}): needs a zero", spec.op));
                }
                (_, z) => z.unwrap_or(Value::Nil),
            };
            let wrong = |pos: usize, idx: u32, cb: &Callback| {
                format!(
                    "fused step {i} ({}): callback {idx} (position {pos}) is a {}, expected {}",
                    spec.op,
                    cb.kind(),
                    kinds[pos]
                )
            };
            let op = match (spec.op.as_str(), cbs.as_slice()) {
                ("map", [(_, _, Callback::Map(f))]) => Op::Map(f.clone()),
                ("map", [(_, _, Callback::MapView(f))]) => Op::MapView(f.clone()),
                ("flatmap", [(_, _, Callback::FlatMap(f))]) => Op::FlatMap(f.clone()),
                ("filter", [(_, _, Callback::Filter(f))]) => Op::Filter(f.clone()),
                ("filter", [(_, _, Callback::FilterView(f))]) => Op::FilterView(f.clone()),
                ("foreach", [(_, _, Callback::Foreach(f))]) => Op::Foreach(f.clone()),
                ("foreach", [(_, _, Callback::ForeachView(f))]) => Op::ForeachView(f.clone()),
                ("accumulate", [(_, _, Callback::Accumulate(f))]) => Op::Accumulate(f.clone()),
                ("aggregate_local", [(_, _, Callback::Fold(f))]) => {
                    Op::AggregateLocal(f.clone(), zero)
                }
                ("localgroupby", [(_, _, Callback::Map(e)), (_, _, Callback::Reduce(r))]) => {
                    Op::LocalGroupBy(e.clone(), r.clone())
                }
                ("aggregateby_local", [(_, _, Callback::Map(e)), (_, _, Callback::KeyFold(s))]) => {
                    Op::AggregateByLocal(e.clone(), s.clone(), zero)
                }
                ("aggregateby_global", [(_, _, Callback::KeyFold(c))]) => {
                    Op::AggregateByGlobal(c.clone(), zero)
                }
                (
                    "batchgroupby_local",
                    [(_, _, Callback::Map(e)), (_, _, Callback::BatchReduce(r))],
                ) => Op::BatchGroupByLocal(e.clone(), r.clone()),
                (_, cbs) => {
                    // The first callback whose kind is wrong.
                    let ok = |pos: usize, cb: &Callback| {
                        matches!(
                            (kinds[pos], cb),
                            ("map" | "extract (map)", Callback::Map(_))
                                | ("map", Callback::MapView(_))
                                | ("flatmap", Callback::FlatMap(_))
                                | ("filter", Callback::Filter(_) | Callback::FilterView(_))
                                | ("foreach", Callback::Foreach(_) | Callback::ForeachView(_))
                                | ("accumulate", Callback::Accumulate(_))
                                | ("aggregate", Callback::Fold(_))
                                | ("reduce", Callback::Reduce(_))
                                | ("aggregateby", Callback::KeyFold(_))
                                | ("batchgroupby reduce", Callback::BatchReduce(_))
                        )
                    };
                    let (pos, idx, cb) = cbs
                        .iter()
                        .find(|(pos, _, cb)| !ok(*pos, cb))
                        .expect("some callback has the wrong kind");
                    return Err(wrong(*pos, *idx, cb));
                }
            };
            ops.push(op);
        }
        let states = ops
            .iter()
            .map(|op| match op {
                Op::Accumulate(_) | Op::AggregateLocal(..) => State::Acc(None),
                Op::LocalGroupBy(..) | Op::AggregateByLocal(..) | Op::AggregateByGlobal(..) => {
                    State::Groups(Groups::default())
                }
                Op::BatchGroupByLocal(..) => State::Batches(Groups::default()),
                _ => State::None,
            })
            .collect();
        Ok(FusedRun {
            ops,
            states,
            combiner,
        })
    }

    /// Runs a batch through the steps.
    pub(crate) fn push(&mut self, records: Vec<Value>) -> Out {
        let mut out = Out::default();
        for r in records {
            feed(&self.ops, &mut self.states, 0, r, &mut out);
        }
        self.combined(out)
    }

    /// Whether the first step reads its records in place (`View`).
    pub(crate) fn views_first(&self) -> bool {
        matches!(
            self.ops.first(),
            Some(Op::MapView(_) | Op::FilterView(_) | Op::ForeachView(_))
        )
    }

    /// Runs a batch, as MessagePack, through the steps: the first step reads each record
    /// in place (`views_first`); what it outputs or passes on is decoded then.
    pub(crate) fn push_encoded(&mut self, batch: &[u8]) -> Result<Out, String> {
        let records = view::records(batch).map_err(|e| e.to_string())?;
        let mut out = Out::default();
        for r in records {
            let r = View(r);
            match &self.ops[0] {
                Op::MapView(f) => match f(r) {
                    Ok(v) => feed(&self.ops, &mut self.states, 1, v, &mut out),
                    Err(e) => out.errors.push(e.to_string()),
                },
                Op::FilterView(f) => match f(r.clone()) {
                    Ok(true) => feed(&self.ops, &mut self.states, 1, r.to_value(), &mut out),
                    Ok(false) => {}
                    Err(e) => out.errors.push(e.to_string()),
                },
                Op::ForeachView(f) => match f(r.clone()) {
                    Ok(()) => feed(&self.ops, &mut self.states, 1, r.to_value(), &mut out),
                    Err(e) => out.errors.push(e.to_string()),
                },
                _ => feed(&self.ops, &mut self.states, 0, r.to_value(), &mut out),
            }
        }
        Ok(self.combined(out))
    }

    fn combined(&self, mut out: Out) -> Out {
        if let Some(c) = self.combiner {
            out.records = c.combine(mem::take(&mut out.records));
        }
        out
    }

    /// The input is over: what the stateful steps hold, each flushed in step order
    /// through the steps after it. The run can take new input afterwards.
    pub(crate) fn finish(&mut self) -> Out {
        let mut out = Out::default();
        for i in 0..self.ops.len() {
            match mem::take(&mut self.states[i]) {
                State::None => {}
                State::Acc(acc) => {
                    self.states[i] = State::Acc(None);
                    if let Some(a) = acc {
                        feed(&self.ops, &mut self.states, i + 1, a, &mut out);
                    }
                }
                State::Groups(mut groups) => {
                    let entries = groups.take();
                    self.states[i] = State::Groups(groups);
                    for (k, a) in entries {
                        feed(&self.ops, &mut self.states, i + 1, kv(k, a), &mut out);
                    }
                }
                State::Batches(mut groups) => {
                    let entries = groups.take();
                    self.states[i] = State::Batches(groups);
                    let Op::BatchGroupByLocal(_, reduce) = &self.ops[i] else {
                        unreachable!("batches belong to batchgroupby_local")
                    };
                    let reduce = reduce.clone();
                    for (k, records) in entries {
                        match reduce(&k, records) {
                            Ok(v) => feed(&self.ops, &mut self.states, i + 1, kv(k, v), &mut out),
                            Err(e) => out.errors.push(e.to_string()),
                        }
                    }
                }
            }
        }
        self.combined(out)
    }
}

/// Takes `{key, value}` apart (an aggregateby_global record).
fn split_kv(r: Value) -> Result<(Value, Value), Value> {
    match r {
        Value::Map(pairs) => {
            let (mut key, mut value) = (None, None);
            for (k, v) in pairs {
                match k.as_str() {
                    Some("key") => key = Some(v),
                    Some("value") => value = Some(v),
                    _ => {}
                }
            }
            match (key, value) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(Value::Nil),
            }
        }
        other => Err(other),
    }
}

/// Step `i` (and, depth-first, the steps after it) on one record.
fn feed(ops: &[Op], states: &mut [State], i: usize, r: Value, out: &mut Out) {
    let Some(op) = ops.get(i) else {
        out.records.push(r);
        return;
    };
    match op {
        Op::Map(f) => match f(Cow::Owned(r)) {
            Ok(v) => feed(ops, states, i + 1, v, out),
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::MapView(f) => match f(View::of(&r)) {
            Ok(v) => feed(ops, states, i + 1, v, out),
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::FilterView(f) => match f(View::of(&r)) {
            Ok(true) => feed(ops, states, i + 1, r, out),
            Ok(false) => {}
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::ForeachView(f) => match f(View::of(&r)) {
            Ok(()) => feed(ops, states, i + 1, r, out),
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::FlatMap(f) => match f(r) {
            Ok(vs) => {
                for v in vs {
                    feed(ops, states, i + 1, v, out);
                }
            }
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::Filter(f) => match f(&r) {
            Ok(true) => feed(ops, states, i + 1, r, out),
            Ok(false) => {}
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::Foreach(f) => match f(&r) {
            Ok(()) => feed(ops, states, i + 1, r, out),
            Err(e) => out.errors.push(e.to_string()),
        },
        Op::Accumulate(f) => {
            let State::Acc(acc) = &mut states[i] else {
                unreachable!()
            };
            match f(acc.as_ref(), r) {
                Ok(v) => *acc = Some(v),
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        Op::AggregateLocal(f, zero) => {
            let State::Acc(acc) = &mut states[i] else {
                unreachable!()
            };
            match f(acc.as_ref().unwrap_or(zero), r) {
                Ok(v) => *acc = Some(v),
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        Op::LocalGroupBy(extract, reduce) => {
            let State::Groups(groups) = &mut states[i] else {
                unreachable!()
            };
            let k = match extract(Cow::Borrowed(&r)) {
                Ok(k) => k,
                Err(e) => return out.errors.push(e.to_string()),
            };
            match groups.find(&k) {
                Some(at) => {
                    let (k, a) = &mut groups.entries[at];
                    match reduce(k, Some(a), r) {
                        Ok(v) => *a = v,
                        Err(e) => out.errors.push(e.to_string()),
                    }
                }
                None => match reduce(&k, None, r) {
                    Ok(v) => groups.insert(k, v),
                    Err(e) => out.errors.push(e.to_string()),
                },
            }
        }
        Op::AggregateByLocal(extract, seq, zero) => {
            let State::Groups(groups) = &mut states[i] else {
                unreachable!()
            };
            let k = match extract(Cow::Borrowed(&r)) {
                Ok(k) => k,
                Err(e) => return out.errors.push(e.to_string()),
            };
            fold_group(groups, seq, zero, k, r, out);
        }
        Op::AggregateByGlobal(comb, zero) => {
            let State::Groups(groups) = &mut states[i] else {
                unreachable!()
            };
            match split_kv(r) {
                Ok((k, v)) => fold_group(groups, comb, zero, k, v, out),
                Err(_) => out.errors.push(
                    "aggregateby: a record of the global phase is not a {key, value} map".into(),
                ),
            }
        }
        Op::BatchGroupByLocal(extract, _) => {
            let State::Batches(groups) = &mut states[i] else {
                unreachable!()
            };
            let k = match extract(Cow::Borrowed(&r)) {
                Ok(k) => k,
                Err(e) => return out.errors.push(e.to_string()),
            };
            match groups.find(&k) {
                Some(at) => groups.entries[at].1.push(r),
                None => groups.insert(k, vec![r]),
            }
        }
    }
}

/// `a = f(k, a, r)` for the group of `k`, `a` starting as zero.
fn fold_group(
    groups: &mut Groups<Value>,
    f: &Rc<KeyFoldFn>,
    zero: &Value,
    k: Value,
    r: Value,
    out: &mut Out,
) {
    match groups.find(&k) {
        Some(at) => {
            let (k, a) = &mut groups.entries[at];
            match f(k, a, r) {
                Ok(v) => *a = v,
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        None => match f(&k, zero, r) {
            Ok(v) => groups.insert(k, v),
            Err(e) => out.errors.push(e.to_string()),
        },
    }
}
