//! What `describe` gives the host, readable by a test; and a described plan turned into
//! the operators the module would run on one shard: module/src/plans/expand.rs (plan
//! steps into fused and native steps, exchanges) and module/src/engine/compile.rs
//! (consecutive fused steps into one run, cut at exchanges and native steps, countby's
//! and count's local half inside the run before them).

use rmpv::Value;

use super::native::{engine, NativeStep};
use crate::builder::{Guest, PlanOut};
use crate::fused::FusedSpec;
use crate::host::unpack;

/// A guest's jobs and registrations, as [`describe`](super::describe) returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The jobs, in the order they were added.
    pub jobs: Vec<PlanInfo>,
    /// The registrations, in the order they were added.
    pub registrations: Vec<PlanInfo>,
}

/// One plan as the host receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    /// A job's name; empty for a registration.
    pub name: String,
    /// The reader (KeysReader, StreamReader, GeneratorReader...).
    pub reader: String,
    /// The reader's arguments, a map keyed by Python's names (`pattern`, `prefix`...).
    pub reader_args: Value,
    /// The steps as the builder recorded them (a job's or registration's final
    /// `collect` included).
    pub steps: Vec<StepInfo>,
    /// `sync`, `async` or `async_local`.
    pub mode: String,
    /// The description, if any.
    pub desc: Option<String>,
}

impl PlanInfo {
    /// The ops of the steps, in order.
    ///
    /// ```
    /// use gears::{testing, GearsBuilder, Guest, Run};
    /// fn describe(g: &mut Guest) {
    ///     g.job("n", GearsBuilder::new("KeysOnlyReader").count().run(Run::new()));
    /// }
    /// let d = testing::describe(describe).unwrap();
    /// assert_eq!(d.jobs[0].ops(), ["count", "collect"]);
    /// ```
    pub fn ops(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.op.as_str()).collect()
    }

    /// A reader argument by name.
    ///
    /// ```
    /// use gears::{testing, GearsBuilder, Guest, Run};
    /// fn describe(g: &mut Guest) {
    ///     g.job("n", GearsBuilder::new("KeysOnlyReader").run(Run::new().pattern("m:*")));
    /// }
    /// let d = testing::describe(describe).unwrap();
    /// assert_eq!(d.jobs[0].reader_arg("pattern").and_then(|p| p.as_str()), Some("m:*"));
    /// ```
    pub fn reader_arg(&self, name: &str) -> Option<&Value> {
        match &self.reader_args {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// map, filter, groupby, countby, limit, collect...
    pub op: String,
    /// Its callbacks' indices in the guest's callback table.
    pub callbacks: Vec<u32>,
    /// Its other arguments (limit's length and offset, sort's reverse, a zero).
    pub args: Vec<Value>,
    /// The callback's name RG.GETEXECUTION shows.
    pub name: String,
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Nil);
    }
    unpack(bytes).map_err(|e| e.to_string())
}

fn step_args(bytes: &[u8]) -> Result<Vec<Value>, String> {
    match decode(bytes)? {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err("arguments must be an array".into()),
    }
}

pub(crate) fn info(p: &PlanOut) -> Result<PlanInfo, String> {
    let steps = p
        .steps
        .iter()
        .map(|s| {
            Ok(StepInfo {
                op: s.op.clone(),
                callbacks: s.callbacks.clone(),
                args: step_args(&s.args).map_err(|e| format!("{}: {e}", s.op))?,
                name: s.name.clone(),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(PlanInfo {
        name: p.name.clone(),
        reader: p.reader.clone(),
        reader_args: decode(&p.reader_args)?,
        steps,
        mode: p.mode.to_string(),
        desc: p.desc.clone(),
    })
}

pub(crate) fn description(g: &Guest) -> Result<Description, String> {
    Ok(Description {
        jobs: g.jobs.iter().map(info).collect::<Result<_, _>>()?,
        registrations: g.registrations.iter().map(info).collect::<Result<_, _>>()?,
    })
}

/// An expanded step (expand.rs's engine steps).
enum Expanded {
    Fused(FusedSpec),
    Native(NativeStep),
    /// collect or repartition: on one shard, records stay where they are, but the
    /// fused run is cut there.
    Exchange,
}

fn fused(op: &str, callbacks: Vec<u32>, zero: Option<Value>) -> Expanded {
    Expanded::Fused(FusedSpec {
        op: op.into(),
        callbacks,
        zero: zero.map(engine),
    })
}

/// The module's expansion of one plan step (plans/expand.rs, wasm/described.rs).
fn expand(s: &StepInfo, out: &mut Vec<Expanded>) -> Result<(), String> {
    let op = s.op.as_str();
    let cb = |i: usize| {
        s.callbacks
            .get(i)
            .copied()
            .ok_or_else(|| format!("{op} needs callback {}", i + 1))
    };
    let args: Vec<Value> = s.args.iter().cloned().map(engine).collect();
    let int_arg = |i: usize, what: &str, default: Option<usize>| match (args.get(i), default) {
        (Some(v), _) if v.as_i64().is_some_and(|n| n >= 0) => Ok(v
            .as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)),
        (None, Some(d)) => Ok(d),
        _ => Err(format!("{what} must be a non-negative integer")),
    };
    let zero = || {
        args.first()
            .cloned()
            .ok_or_else(|| format!("{op} needs a zero value"))
    };
    let two_phase = |out: &mut Vec<Expanded>, local, global| {
        out.push(Expanded::Native(local));
        out.push(Expanded::Exchange);
        out.push(Expanded::Native(global));
    };
    match op {
        "map" | "flatmap" | "filter" | "foreach" | "accumulate" => {
            out.push(fused(op, vec![cb(0)?], None))
        }
        "localgroupby" => out.push(fused(op, vec![cb(0)?, cb(1)?], None)),
        "limit" => out.push(Expanded::Native(NativeStep::Limit {
            length: int_arg(0, "limit length", None)?,
            offset: int_arg(1, "limit offset", Some(0))?,
        })),
        "collect" => out.push(Expanded::Exchange),
        "repartition" => {
            cb(0)?;
            out.push(Expanded::Exchange);
        }
        "groupby" => {
            out.push(Expanded::Exchange);
            out.push(fused("localgroupby", vec![cb(0)?, cb(1)?], None));
        }
        "batchgroupby" => {
            out.push(Expanded::Exchange);
            out.push(fused("batchgroupby_local", vec![cb(0)?, cb(1)?], None));
        }
        "aggregate" => {
            let zero = zero()?;
            out.push(fused("aggregate_local", vec![cb(0)?], Some(zero.clone())));
            out.push(Expanded::Exchange);
            out.push(fused("aggregate_local", vec![cb(1)?], Some(zero)));
        }
        "aggregateby" => {
            let zero = zero()?;
            let local = vec![cb(0)?, cb(1)?];
            out.push(fused("aggregateby_local", local, Some(zero.clone())));
            out.push(Expanded::Exchange);
            out.push(fused("aggregateby_global", vec![cb(2)?], Some(zero)));
        }
        "count" => two_phase(out, NativeStep::LocalCount, NativeStep::SumCounts),
        "countby" => {
            if let Some(&e) = s.callbacks.first() {
                out.push(fused("map", vec![e], None));
            }
            two_phase(out, NativeStep::LocalCountBy, NativeStep::SumCountsBy);
        }
        "distinct" => two_phase(out, NativeStep::Distinct, NativeStep::Distinct),
        "avg" => {
            if let Some(&e) = s.callbacks.first() {
                out.push(fused("map", vec![e], None));
            }
            two_phase(out, NativeStep::LocalAvg, NativeStep::FinalAvg);
        }
        "sort" => {
            let reverse = matches!(args.first(), Some(Value::Boolean(true)))
                || args.first().and_then(Value::as_i64) == Some(1);
            let step = NativeStep::Sort { reverse };
            two_phase(out, step.clone(), step);
        }
        other => return Err(format!("unknown operation '{other}'")),
    }
    Ok(())
}

/// An operator of the compiled plan.
pub(crate) enum Operator {
    /// One fused run of the guest's steps (maybe ending in a combiner).
    Fused(Vec<FusedSpec>),
    Native(NativeStep),
}

/// The operators the module runs for a plan on one shard, in order.
pub(crate) fn compile(plan: &PlanInfo) -> Result<Vec<Operator>, String> {
    let mut steps = Vec::new();
    for s in &plan.steps {
        expand(s, &mut steps)?;
    }
    let mut ops = Vec::new();
    let mut group: Vec<FusedSpec> = Vec::new();
    for step in steps {
        match step {
            Expanded::Fused(spec) => group.push(spec),
            Expanded::Native(n) => {
                // The SDK speaks contract 1.2+: the host hands countby's and count's
                // local half to the run before them, and only folds the partials.
                let combined = match (&n, group.is_empty()) {
                    (NativeStep::LocalCountBy, false) => Some(("countby", NativeStep::SumCountsBy)),
                    (NativeStep::LocalCount, false) => Some(("count", NativeStep::SumCounts)),
                    _ => None,
                };
                if let Some((c, partials)) = combined {
                    group.push(FusedSpec {
                        op: format!("combine_{c}"),
                        callbacks: Vec::new(),
                        zero: None,
                    });
                    ops.push(Operator::Fused(std::mem::take(&mut group)));
                    ops.push(Operator::Native(partials));
                } else {
                    if !group.is_empty() {
                        ops.push(Operator::Fused(std::mem::take(&mut group)));
                    }
                    ops.push(Operator::Native(n));
                }
            }
            Expanded::Exchange => {
                if !group.is_empty() {
                    ops.push(Operator::Fused(std::mem::take(&mut group)));
                }
            }
        }
    }
    if !group.is_empty() {
        ops.push(Operator::Fused(group));
    }
    Ok(ops)
}
