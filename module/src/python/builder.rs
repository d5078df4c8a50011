//! Turning the steps a GearsBuilder recorded into engine steps (plans::expand), with
//! Python callables as the step arguments.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::fused::PyStepArgs;
use crate::engine::plan::{HostStep, Step};
use crate::plans::expand::{expand, Op, StepSource};

struct PySource<'py> {
    py: Python<'py>,
}

impl<'py> StepSource for PySource<'py> {
    type Arg = Bound<'py, PyAny>;

    fn host_step(&self, op: &'static str, args: Vec<Self::Arg>) -> Result<HostStep, String> {
        let tuple = PyTuple::new(self.py, args).map_err(|e| e.to_string())?;
        Ok(HostStep {
            op,
            payload: Arc::new(PyStepArgs(tuple.unbind())),
        })
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

/// Engine steps for the recorded `(op, args)` list.
pub fn build(py: Python<'_>, recorded: &Bound<'_, PyList>) -> PyResult<Vec<Step>> {
    let mut ops = Vec::with_capacity(recorded.len());
    for item in recorded.iter() {
        let (op, args): (String, Bound<'_, PyTuple>) = item.extract()?;
        ops.push(op_of(&op, &args)?);
    }
    expand(&PySource { py }, ops).map_err(PyValueError::new_err)
}
