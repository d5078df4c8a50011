//! Turning the steps a GearsBuilder recorded into engine steps: Python primitives, native
//! steps and the exchanges where records would move between shards.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::fused::PyStepArgs;
use crate::engine::plan::{Exchange, HostStep, NativeStep, Step, StepKind};

/// The callback name and argument text RG.GETEXECUTION shows for a step.
fn describe(arg: Option<&Bound<'_, PyAny>>) -> (String, String) {
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

struct Builder<'py> {
    py: Python<'py>,
    steps: Vec<Step>,
}

impl<'py> Builder<'py> {
    fn host(
        &mut self,
        op: &'static str,
        type_name: &str,
        args: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let step = self.host_step(op, args.clone())?;
        let (name, arg) = describe(args.iter().find(|a| a.is_callable()));
        self.steps.push(Step {
            kind: StepKind::Host(step),
            type_name: type_name.into(),
            name,
            arg,
        });
        Ok(())
    }

    fn host_step(&self, op: &'static str, args: Vec<Bound<'py, PyAny>>) -> PyResult<HostStep> {
        let tuple = PyTuple::new(self.py, args)?;
        Ok(HostStep {
            op,
            payload: Arc::new(PyStepArgs(tuple.unbind())),
        })
    }

    fn native(&mut self, step: NativeStep, type_name: &str, arg: String) {
        self.steps.push(Step {
            kind: StepKind::Native(step),
            type_name: type_name.into(),
            name: String::new(),
            arg,
        });
    }

    fn exchange(&mut self, x: Exchange, extract: Option<&Bound<'py, PyAny>>) {
        let type_name = match x {
            Exchange::Collect => "CollectStep",
            Exchange::Repartition(_) => "RepartitionStep",
        };
        let (name, arg) = describe(extract);
        self.steps.push(Step {
            kind: StepKind::Exchange(x),
            type_name: type_name.into(),
            name,
            arg,
        });
    }

    fn repartition_by(&mut self, extract: &Bound<'py, PyAny>) -> PyResult<()> {
        let step = self.host_step("map", vec![extract.clone()])?;
        self.exchange(Exchange::Repartition(Some(step)), Some(extract));
        Ok(())
    }
}

fn usize_arg(args: &Bound<'_, PyTuple>, i: usize, what: &str) -> PyResult<usize> {
    args.get_item(i)?
        .extract::<usize>()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a non-negative integer")))
}

/// Engine steps for the recorded `(op, args)` list.
pub fn build(py: Python<'_>, recorded: &Bound<'_, PyList>) -> PyResult<Vec<Step>> {
    let mut b = Builder {
        py,
        steps: Vec::new(),
    };
    for item in recorded.iter() {
        let (op, args): (String, Bound<'_, PyTuple>) = item.extract()?;
        let arg = |i: usize| args.get_item(i);
        let given = |i: usize| -> PyResult<Option<Bound<'_, PyAny>>> {
            Ok(if args.len() > i {
                Some(args.get_item(i)?).filter(|a| !a.is_none())
            } else {
                None
            })
        };
        match op.as_str() {
            "map" => b.host("map", "MapStep", vec![arg(0)?])?,
            "flatmap" => b.host("flatmap", "FlatMapStep", vec![arg(0)?])?,
            "filter" => b.host("filter", "FilterStep", vec![arg(0)?])?,
            "foreach" => b.host("foreach", "ForEachStep", vec![arg(0)?])?,
            "accumulate" => b.host("accumulate", "AccumulateStep", vec![arg(0)?])?,
            "localgroupby" => b.host(
                "localgroupby",
                "AccumulateByKeyStep",
                vec![arg(0)?, arg(1)?],
            )?,
            "limit" => {
                let length = usize_arg(&args, 0, "limit length")?;
                let offset = if args.len() > 1 {
                    usize_arg(&args, 1, "limit offset")?
                } else {
                    0
                };
                b.native(
                    NativeStep::Limit { offset, length },
                    "LimitStep",
                    format!("{length}, {offset}"),
                );
            }
            "collect" => b.exchange(Exchange::Collect, None),
            "repartition" => b.repartition_by(&arg(0)?)?,
            "groupby" => {
                b.repartition_by(&arg(0)?)?;
                b.host(
                    "localgroupby",
                    "AccumulateByKeyStep",
                    vec![arg(0)?, arg(1)?],
                )?;
            }
            "batchgroupby" => {
                b.repartition_by(&arg(0)?)?;
                b.host("batchgroupby_local", "GroupStep", vec![arg(0)?, arg(1)?])?;
            }
            "aggregate" => {
                b.host("aggregate_local", "AccumulateStep", vec![arg(0)?, arg(1)?])?;
                b.exchange(Exchange::Collect, None);
                b.host("aggregate_local", "AccumulateStep", vec![arg(0)?, arg(2)?])?;
            }
            "aggregateby" => {
                b.host(
                    "aggregateby_local",
                    "AccumulateByKeyStep",
                    vec![arg(0)?, arg(1)?, arg(2)?],
                )?;
                b.exchange(Exchange::Repartition(None), None);
                b.host(
                    "aggregateby_global",
                    "AccumulateByKeyStep",
                    vec![arg(1)?, arg(3)?],
                )?;
            }
            "count" => {
                b.native(NativeStep::LocalCount, "AccumulateStep", "count".into());
                b.exchange(Exchange::Collect, None);
                b.native(NativeStep::SumCounts, "AccumulateStep", "count".into());
            }
            "countby" => {
                if let Some(extract) = given(0)? {
                    b.host("map", "ExtractKeyStep", vec![extract])?;
                }
                b.native(
                    NativeStep::LocalCountBy,
                    "AccumulateByKeyStep",
                    "countby".into(),
                );
                b.exchange(Exchange::Repartition(None), None);
                b.native(
                    NativeStep::SumCountsBy,
                    "AccumulateByKeyStep",
                    "countby".into(),
                );
            }
            "distinct" => {
                b.native(NativeStep::Distinct, "AccumulateStep", "distinct".into());
                b.exchange(Exchange::Collect, None);
                b.native(NativeStep::Distinct, "AccumulateStep", "distinct".into());
            }
            "avg" => {
                if let Some(extract) = given(0)? {
                    b.host("map", "MapStep", vec![extract])?;
                }
                b.native(NativeStep::LocalAvg, "AccumulateStep", "avg".into());
                b.exchange(Exchange::Collect, None);
                b.native(NativeStep::FinalAvg, "AccumulateStep", "avg".into());
            }
            "sort" => {
                let reverse = given(0)?
                    .map(|r| r.is_truthy())
                    .transpose()?
                    .unwrap_or(false);
                let shown = if reverse { "reverse" } else { "" };
                b.native(
                    NativeStep::Sort { reverse },
                    "AccumulateStep",
                    format!("sort {shown}"),
                );
                b.exchange(Exchange::Collect, None);
                b.native(
                    NativeStep::Sort { reverse },
                    "AccumulateStep",
                    format!("sort {shown}"),
                );
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown operation '{other}'"
                )))
            }
        }
    }
    Ok(b.steps)
}
