//! The Python front end's plan, built in this one place: what a GearsBuilder recorded (its
//! reader and arguments, its operations, the run() / register() options) as an engine
//! Plan. The callables and values its steps and reader take become the plan's objects,
//! which its host holds; the plan refers to them by index.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::convert::to_value;
use super::host::PythonHost;
use crate::config::{self, Key};
use crate::engine::plan::{HostStep, Mode, Plan, PlanArg, ReaderSpec};
use crate::plans::args::{wrong_type, Args};
use crate::plans::expand::{expand, Op, StepSource};

/// The objects of a plan being built.
#[derive(Default)]
struct Objects(RefCell<Vec<Py<PyAny>>>);

impl Objects {
    fn add(&self, obj: &Bound<'_, PyAny>) -> PlanArg {
        let mut objects = self.0.borrow_mut();
        objects.push(obj.clone().unbind());
        PlanArg::Code(objects.len() as u32 - 1)
    }
}

struct PySource<'o, 'py> {
    _py: Python<'py>,
    objects: &'o Objects,
}

impl<'py> StepSource for PySource<'_, 'py> {
    type Arg = Bound<'py, PyAny>;

    fn host_step(&self, op: &'static str, args: Vec<Self::Arg>) -> Result<HostStep, String> {
        let args = args.iter().map(|a| self.objects.add(a)).collect();
        Ok(HostStep { op, args })
    }

    fn describe(&self, arg: Option<&Self::Arg>) -> (String, String) {
        let Some(arg) = arg else {
            return (String::new(), String::new());
        };
        let name = arg
            .getattr("__qualname__")
            .or_else(|_| arg.getattr("__name__"))
            .and_then(|n| n.str().map(|s| s.to_string()))
            .unwrap_or_else(|_| {
                arg.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            });
        let repr = arg.repr().map(|r| r.to_string()).unwrap_or_default();
        (name, repr)
    }
}

fn usize_arg(args: &Bound<'_, PyTuple>, i: usize, what: &str) -> PyResult<usize> {
    args.get_item(i)?
        .extract::<usize>()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a non-negative integer")))
}

/// One recorded `(op, args)` as an operation.
fn op_of<'py>(op: &str, args: &Bound<'py, PyTuple>) -> PyResult<Op<Bound<'py, PyAny>>> {
    let arg = |i: usize| args.get_item(i);
    let given = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(if args.len() > i {
            Some(args.get_item(i)?).filter(|a| !a.is_none())
        } else {
            None
        })
    };
    Ok(match op {
        "map" => Op::Map(arg(0)?),
        "flatmap" => Op::FlatMap(arg(0)?),
        "filter" => Op::Filter(arg(0)?),
        "foreach" => Op::ForEach(arg(0)?),
        "accumulate" => Op::Accumulate(arg(0)?),
        "localgroupby" => Op::LocalGroupBy {
            extract: arg(0)?,
            reduce: arg(1)?,
        },
        "limit" => Op::Limit {
            length: usize_arg(args, 0, "limit length")?,
            offset: if args.len() > 1 {
                usize_arg(args, 1, "limit offset")?
            } else {
                0
            },
        },
        "collect" => Op::Collect,
        "repartition" => Op::Repartition(arg(0)?),
        "groupby" => Op::GroupBy {
            extract: arg(0)?,
            reduce: arg(1)?,
        },
        "batchgroupby" => Op::BatchGroupBy {
            extract: arg(0)?,
            reduce: arg(1)?,
        },
        "aggregate" => Op::Aggregate {
            zero: arg(0)?,
            seq: arg(1)?,
            comb: arg(2)?,
        },
        "aggregateby" => Op::AggregateBy {
            extract: arg(0)?,
            zero: arg(1)?,
            seq: arg(2)?,
            comb: arg(3)?,
        },
        "count" => Op::Count,
        "countby" => Op::CountBy(given(0)?),
        "distinct" => Op::Distinct,
        "avg" => Op::Avg(given(0)?),
        "sort" => Op::Sort {
            reverse: given(0)?
                .map(|r| r.is_truthy())
                .transpose()?
                .unwrap_or(false),
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown operation '{other}'"
            )))
        }
    })
}

/// An option of run() / register(), or `default` when missing or None.
fn option<'py, T: FromPyObjectOwned<'py>>(
    options: &Bound<'py, PyDict>,
    name: &str,
    default: T,
) -> PyResult<T> {
    match options.get_item(name)? {
        Some(v) if !v.is_none() => v
            .extract::<T>()
            .map_err(|_| PyTypeError::new_err(wrong_type(name))),
        _ => Ok(default),
    }
}

/// The `mode` option of run() and register() (default async).
fn mode_of(options: &Bound<'_, PyDict>) -> PyResult<Mode> {
    let text: String = option(options, "mode", "async".to_string())?;
    Mode::parse(&text).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown execution mode '{text}' (sync, async or async_local)"
        ))
    })
}

/// The reader arguments as a spec: functions become objects of the plan, the rest values.
fn reader_spec(name: &str, args: &Bound<'_, PyDict>, objects: &Objects) -> PyResult<ReaderSpec> {
    let mut spec = ReaderSpec::new(name);
    for (k, v) in args.iter() {
        let k: String = k.extract().unwrap_or_else(|_| format!("{k}"));
        let arg = if v.is_callable() {
            objects.add(&v)
        } else {
            PlanArg::Value(to_value(&v))
        };
        spec.set(&k, arg);
    }
    // The readers that call Python need a function where they call it.
    let code = |name: &str| matches!(spec.arg(name), Some(PlanArg::Code(_)));
    match name {
        "PythonReader" if !code("generator") => Err(PyTypeError::new_err(
            "PythonReader needs a generator function",
        )),
        "KeysOnlyReader" if spec.has("patternGenerator") && !code("patternGenerator") => {
            Err(PyTypeError::new_err("patternGenerator must be callable"))
        }
        _ => Ok(spec),
    }
}

/// The plan of a run() or register(): `reader` over `reader_args`, the recorded
/// `(op, args)` list, and the options (mode, desc, convertToStr).
pub fn plan(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    recorded: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Plan> {
    let mode = mode_of(options)?;
    let objects = Objects::default();
    let mut ops = Vec::with_capacity(recorded.len());
    for item in recorded.iter() {
        let (op, args): (String, Bound<'_, PyTuple>) = item.extract()?;
        ops.push(op_of(&op, &args)?);
    }
    let steps = expand(
        &PySource {
            _py: py,
            objects: &objects,
        },
        ops,
    )
    .map_err(PyValueError::new_err)?;
    let reader = reader_spec(reader, reader_args, &objects)?;
    let desc: Option<String> = option(options, "desc", None)?;
    let plain_strings = option(options, "convertToStr", false)?;
    let traceback = config::get(Key::PythonAttemptTraceback) == 1;
    let host = PythonHost::new(objects.0.into_inner(), traceback, plain_strings);
    Ok(Plan {
        reader,
        steps,
        mode,
        desc,
        host: Some(Arc::new(host)),
    })
}
