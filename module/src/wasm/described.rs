//! A guest's described plans as engine plans: steps (plans::expand with guest callbacks),
//! readers and triggers (plans::readers / plans::triggers, as for Python).

use std::sync::Arc;

use super::bindings::types;
use super::host::WasmHost;
use super::program::Program;
use crate::engine::codec;
use crate::engine::plan::{HostStep, Mode, Plan, PlanArg, ReaderSpec};
use crate::engine::value::Value;
use crate::plans::expand::{expand, Op, StepSource};

/// An argument of a guest step: a callback (with the name shown for it) or a zero value.
#[derive(Clone)]
pub enum GuestArg {
    Callback { index: u32, name: String },
    Zero(Value),
}

struct GuestSource<'p> {
    program: &'p Arc<Program>,
}

impl StepSource for GuestSource<'_> {
    type Arg = GuestArg;

    fn host_step(&self, op: &'static str, args: Vec<GuestArg>) -> Result<HostStep, String> {
        let args = args
            .into_iter()
            .map(|a| match a {
                GuestArg::Callback { index, .. } => PlanArg::Code(index),
                GuestArg::Zero(z) => PlanArg::Value(z),
            })
            .collect();
        Ok(HostStep { op, args })
    }

    fn describe(&self, arg: Option<&GuestArg>) -> (String, String) {
        match arg {
            Some(GuestArg::Callback { index, name }) => (
                name.clone(),
                format!("{} callback {index}", self.program.name),
            ),
            _ => (String::new(), String::new()),
        }
    }
}

/// The reader spec of a described plan: its MessagePack map of arguments, with a
/// GeneratorReader's generator as a callback.
fn reader_spec(plan: &types::Plan) -> Result<ReaderSpec, String> {
    let mut spec = ReaderSpec::new(plan.reader.as_str());
    let args = if plan.reader_args.is_empty() {
        Value::Nil
    } else {
        codec::decode(&plan.reader_args).map_err(|e| format!("bad reader arguments: {e}"))?
    };
    let pairs = match args {
        Value::Map(pairs) => pairs,
        Value::Nil => Vec::new(),
        _ => return Err("reader arguments must be a map".into()),
    };
    for (k, v) in pairs {
        let Value::Str(k) = k else { continue };
        let arg = match (plan.reader.as_str(), k.as_str(), v) {
            ("GeneratorReader", "generator", Value::Int(i)) => PlanArg::Code(
                u32::try_from(i).map_err(|_| "GeneratorReader needs a generator callback")?,
            ),
            (_, _, v) => PlanArg::Value(v),
        };
        spec.set(&k, arg);
    }
    Ok(spec)
}

fn plain_args(step: &types::Step) -> Result<Vec<Value>, String> {
    if step.args.is_empty() {
        return Ok(Vec::new());
    }
    match codec::decode(&step.args).map_err(|e| format!("{}: bad arguments: {e}", step.op))? {
        Value::List(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(format!("{}: arguments must be an array", step.op)),
    }
}

fn op_of(step: &types::Step) -> Result<Op<GuestArg>, String> {
    let cb = |i: usize| -> Result<GuestArg, String> {
        step.callbacks
            .get(i)
            .map(|&index| GuestArg::Callback {
                index,
                name: step.name.clone(),
            })
            .ok_or_else(|| format!("{} needs callback {}", step.op, i + 1))
    };
    let opt_cb = || step.callbacks.first().map(|_| cb(0)).transpose();
    let args = plain_args(step)?;
    let int_arg = |i: usize, what: &str, default: Option<usize>| -> Result<usize, String> {
        match (args.get(i), default) {
            (Some(Value::Int(n)), _) if *n >= 0 => Ok(*n as usize),
            (None, Some(d)) => Ok(d),
            _ => Err(format!("{what} must be a non-negative integer")),
        }
    };
    let zero = || -> Result<GuestArg, String> {
        let v = args
            .first()
            .ok_or_else(|| format!("{} needs a zero value", step.op))?;
        Ok(GuestArg::Zero(v.clone()))
    };
    Ok(match step.op.as_str() {
        "map" => Op::Map(cb(0)?),
        "flatmap" => Op::FlatMap(cb(0)?),
        "filter" => Op::Filter(cb(0)?),
        "foreach" => Op::ForEach(cb(0)?),
        "accumulate" => Op::Accumulate(cb(0)?),
        "localgroupby" => Op::LocalGroupBy {
            extract: cb(0)?,
            reduce: cb(1)?,
        },
        "limit" => Op::Limit {
            length: int_arg(0, "limit length", None)?,
            offset: int_arg(1, "limit offset", Some(0))?,
        },
        "collect" => Op::Collect,
        "repartition" => Op::Repartition(cb(0)?),
        "groupby" => Op::GroupBy {
            extract: cb(0)?,
            reduce: cb(1)?,
        },
        "batchgroupby" => Op::BatchGroupBy {
            extract: cb(0)?,
            reduce: cb(1)?,
        },
        "aggregate" => Op::Aggregate {
            zero: zero()?,
            seq: cb(0)?,
            comb: cb(1)?,
        },
        "aggregateby" => Op::AggregateBy {
            extract: cb(0)?,
            zero: zero()?,
            seq: cb(1)?,
            comb: cb(2)?,
        },
        "count" => Op::Count,
        "countby" => Op::CountBy(opt_cb()?),
        "distinct" => Op::Distinct,
        "avg" => Op::Avg(opt_cb()?),
        "sort" => Op::Sort {
            reverse: matches!(args.first(), Some(Value::Bool(true)) | Some(Value::Int(1))),
        },
        other => return Err(format!("unknown operation '{other}'")),
    })
}

/// The engine plan of one of a guest's described plans (a job or a registration).
pub fn plan(program: &Arc<Program>, described: &types::Plan) -> Result<Plan, String> {
    let mode = Mode::parse(&described.mode).ok_or_else(|| {
        format!(
            "unknown execution mode '{}' (sync, async or async_local)",
            described.mode
        )
    })?;
    let ops = described
        .steps
        .iter()
        .map(op_of)
        .collect::<Result<Vec<_>, _>>()?;
    let steps = expand(&GuestSource { program }, ops)?;
    let plan = Plan {
        reader: reader_spec(described)?,
        steps,
        mode,
        desc: described.desc.clone(),
        host: Some(WasmHost::of(program.clone())),
    };
    // A guest's plans name the guest itself.
    let find = |name: &str| (name == program.name).then(|| program.clone());
    plan.travelled(&|_, reference| WasmHost::resolve(reference, &find))
        .map_err(|e| format!("{e:#}"))
}

/// The plan of a job run with RG.WASMRUN's arguments: a GeneratorReader gets them all,
/// other readers take the first as their main argument (the pattern, the stream key).
pub fn job_plan(
    program: &Arc<Program>,
    job: &types::Plan,
    run_args: Vec<String>,
) -> Result<Plan, String> {
    let mut plan = plan(program, job)?;
    let reader = &mut plan.reader;
    if reader.name == "GeneratorReader" {
        let args = run_args.into_iter().map(Value::Str).collect();
        reader.set("args", PlanArg::Value(Value::List(args)));
    } else if let Some(first) = run_args.into_iter().next() {
        let main = match reader.name.as_str() {
            "StreamReader" => "key",
            _ => "pattern",
        };
        reader.set(main, PlanArg::Value(Value::Str(first)));
    }
    Ok(plan)
}
