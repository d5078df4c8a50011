//! A guest's described plans as engine plans: steps (plans::expand with guest callbacks),
//! readers and triggers (plans::readers / plans::triggers, as for Python).

use std::sync::Arc;

use super::bindings::types;
use super::codec;
use super::fused::WasmStepArgs;
use super::generator::GuestGenerator;
use super::program::Program;
use crate::engine::plan::{HostStep, Mode, Step};
use crate::engine::reader::Reader;
use crate::engine::value::Value;
use crate::plans::args::{wrong_type, Args};
use crate::plans::expand::{expand, Op, StepSource};
use crate::plans::readers::native_reader;

/// An argument of a guest step: a callback (with the name shown for it) or a zero value.
#[derive(Clone)]
pub enum GuestArg {
    Callback { index: u32, name: String },
    Zero(Vec<u8>),
}

struct GuestSource<'p> {
    program: &'p Arc<Program>,
}

impl StepSource for GuestSource<'_> {
    type Arg = GuestArg;

    fn host_step(&self, op: &'static str, args: Vec<GuestArg>) -> Result<HostStep, String> {
        let mut callbacks = Vec::new();
        let mut zero = None;
        for a in args {
            match a {
                GuestArg::Callback { index, .. } => callbacks.push(index),
                GuestArg::Zero(z) => zero = Some(z),
            }
        }
        Ok(HostStep {
            op,
            payload: Arc::new(WasmStepArgs {
                program: self.program.clone(),
                callbacks,
                zero,
            }),
        })
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

/// The MessagePack map of a plan's reader arguments.
pub struct GuestArgs(Vec<(String, Value)>);

impl GuestArgs {
    pub fn decode(packed: &[u8]) -> Result<GuestArgs, String> {
        if packed.is_empty() {
            return Ok(GuestArgs(Vec::new()));
        }
        match codec::decode(packed).map_err(|e| format!("bad reader arguments: {e}"))? {
            Value::Map(pairs) => Ok(GuestArgs(
                pairs
                    .into_iter()
                    .filter_map(|(k, v)| match k {
                        Value::Str(k) => Some((k, v)),
                        _ => None,
                    })
                    .collect(),
            )),
            Value::Nil => Ok(GuestArgs(Vec::new())),
            _ => Err("reader arguments must be a map".into()),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Nil))
    }

    /// Sets (or replaces) an argument.
    pub fn set(&mut self, name: &str, v: Value) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), v));
    }
}

impl Args for GuestArgs {
    fn text(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Int(i)) => Ok(Some(*i != 0)),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn number(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn texts(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(wrong_type(name)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Nil))
            .map(|(k, _)| k.clone())
            .collect()
    }
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
        Ok(GuestArg::Zero(codec::encode_one(v)))
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

/// Engine steps of a described plan.
pub fn steps(program: &Arc<Program>, plan: &types::Plan) -> Result<Vec<Step>, String> {
    let ops = plan
        .steps
        .iter()
        .map(op_of)
        .collect::<Result<Vec<_>, _>>()?;
    expand(&GuestSource { program }, ops)
}

pub fn mode(plan: &types::Plan) -> Result<Mode, String> {
    Mode::parse(&plan.mode).ok_or_else(|| {
        format!(
            "unknown execution mode '{}' (sync, async or async_local)",
            plan.mode
        )
    })
}

/// The reader of a job run with RG.WASMRUN's arguments: the first argument replaces the
/// reader's main argument (the pattern, the stream key); a generator gets them all.
pub fn job_reader(
    program: &Arc<Program>,
    plan: &types::Plan,
    run_args: Vec<String>,
) -> Result<Box<dyn Reader>, String> {
    let mut args = GuestArgs::decode(&plan.reader_args)?;
    if plan.reader == "GeneratorReader" {
        let callback = match args.get("generator") {
            Some(Value::Int(i)) if *i >= 0 && *i <= u32::MAX as i64 => *i as u32,
            _ => return Err("GeneratorReader needs a generator callback".into()),
        };
        return Ok(Box::new(GuestGenerator::new(
            program.clone(),
            callback,
            run_args,
        )));
    }
    if let Some(first) = run_args.into_iter().next() {
        let main = match plan.reader.as_str() {
            "StreamReader" => "key",
            _ => "pattern",
        };
        args.set(main, Value::Str(first));
    }
    native_reader(&plan.reader, &args)?
        .ok_or_else(|| format!("reader {} does not support run()", plan.reader))
}
