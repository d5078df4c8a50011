//! The Python host of one plan: the plan's objects (the callables and values its steps and
//! reader refer to by index), fused runs over them, the readers that call Python, and the
//! plan's code as bytes (one cloudpickle of the objects) for another shard.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::convert::to_py;
use super::fused;
use super::generator::{pattern_source, GeneratorReader};
use crate::engine::execution::Execution;
use crate::engine::operator::Operator;
use crate::engine::plan::{Combiner, Host, HostStep, OutputForm, PlanArg, ReaderSpec};
use crate::engine::reader::Reader;
use crate::engine::spares::SpareKey;
use crate::engine::value::Value;
use crate::plans::args::{flag_or, number_or};
use crate::readers::keys::KeysReader;

pub struct PythonHost {
    /// What the plan's `PlanArg::Code` indices refer to.
    objects: Vec<Py<PyAny>>,
    pub traceback: bool,
    /// convertToStr: final strings are plain bulk replies, never status or error replies.
    pub plain_strings: bool,
    /// Fused runs of this plan that ended cleanly, for its next runs.
    spares: Arc<fused::PySpares>,
}

impl PythonHost {
    pub fn new(objects: Vec<Py<PyAny>>, traceback: bool, plain_strings: bool) -> PythonHost {
        PythonHost {
            objects,
            traceback,
            plain_strings,
            spares: Arc::default(),
        }
    }

    fn object<'py>(&self, py: Python<'py>, i: u32) -> anyhow::Result<Bound<'py, PyAny>> {
        self.objects
            .get(i as usize)
            .map(|o| o.bind(py).clone())
            .ok_or_else(|| anyhow!("a Python plan refers to object {i}, which it lacks"))
    }

    /// A step's arguments as the tuple the shim's FusedRun takes.
    fn args<'py>(&self, py: Python<'py>, step: &HostStep) -> anyhow::Result<Bound<'py, PyTuple>> {
        let mut items = Vec::with_capacity(step.args.len());
        for a in &step.args {
            items.push(match a {
                PlanArg::Code(i) => self.object(py, *i)?,
                PlanArg::Value(v) => to_py(py, v)?,
            });
        }
        Ok(PyTuple::new(py, items)?)
    }

    fn fused(
        &self,
        steps: &[HostStep],
        output: OutputForm,
        combiner: Option<Combiner>,
        profile: bool,
        sync: bool,
    ) -> anyhow::Result<Box<dyn Operator>> {
        Python::attach(|py| {
            let make_steps = || -> anyhow::Result<Bound<'_, PyList>> {
                let list = PyList::empty(py);
                for step in steps {
                    list.append((step.op, self.args(py, step)?))?;
                }
                Ok(list)
            };
            let options = fused::Options {
                output,
                combiner,
                profile,
                sync,
                traceback: self.traceback,
                plain_strings: self.plain_strings,
            };
            let spare = SpareKey::of(steps, sync as u8).map(|k| (self.spares.clone(), k));
            fused::operator(py, make_steps, steps.len(), options, spare)
        })
    }

    /// The host of a plan another shard encoded (`Host::reference`'s value).
    pub fn resolve(reference: &Value, traceback: bool) -> anyhow::Result<Arc<dyn Host>> {
        let Some(Value::Bytes(pickled)) = reference.get("objects") else {
            bail!("a Python plan without its objects");
        };
        let plain_strings = matches!(reference.get("convertToStr"), Some(Value::Bool(true)));
        let objects = Python::attach(|py| -> PyResult<Vec<Py<PyAny>>> {
            let list = py
                .import("pickle")?
                .call_method1("loads", (PyBytes::new(py, pickled),))?;
            list.try_iter()?.map(|o| Ok(o?.unbind())).collect()
        })
        .context("unpickling a Python plan")?;
        Ok(Arc::new(PythonHost::new(objects, traceback, plain_strings)))
    }
}

impl Host for PythonHost {
    fn name(&self) -> &'static str {
        "python"
    }

    fn reference(&self) -> anyhow::Result<Value> {
        let pickled = Python::attach(|py| -> PyResult<Vec<u8>> {
            let list = PyList::new(py, self.objects.iter().map(|o| o.bind(py)))?;
            py.import("cloudpickle")?
                .call_method1("dumps", (list,))?
                .extract()
        })
        .context("pickling a Python plan")?;
        Ok(Value::Map(vec![
            (Value::str("objects"), Value::Bytes(pickled)),
            (Value::str("convertToStr"), Value::Bool(self.plain_strings)),
        ]))
    }

    fn fuse(
        &self,
        steps: &[HostStep],
        output: OutputForm,
        profile: bool,
        sync: bool,
    ) -> anyhow::Result<Box<dyn Operator>> {
        self.fused(steps, output, None, profile, sync)
    }

    fn fuse_combined(
        &self,
        steps: &[HostStep],
        combiner: Combiner,
        profile: bool,
        sync: bool,
    ) -> anyhow::Result<Option<Box<dyn Operator>>> {
        // Partials are plain values (dicts of str keys, ints) for the native fold.
        self.fused(steps, OutputForm::Values, Some(combiner), profile, sync)
            .map(Some)
    }

    fn reader(
        &self,
        spec: &ReaderSpec,
        first_step_native: bool,
    ) -> anyhow::Result<Option<Box<dyn Reader>>> {
        let code = |name: &str| match spec.arg(name) {
            Some(PlanArg::Code(i)) => Ok(*i),
            _ => Err(anyhow!("{} needs {name}, a function", spec.name)),
        };
        let reader: Box<dyn Reader> = match spec.name.as_str() {
            "PythonReader" => {
                let generator = code("generator")?;
                Python::attach(|py| -> anyhow::Result<Box<dyn Reader>> {
                    let generator = self.object(py, generator)?;
                    Ok(Box::new(GeneratorReader::new(
                        py,
                        &generator,
                        first_step_native,
                    )?))
                })?
            }
            "KeysOnlyReader" => {
                let generator = code("patternGenerator")?;
                let generator = Python::attach(|py| self.object(py, generator).map(Bound::unbind))?;
                let no_scan = flag_or(spec, "noScan", false).map_err(anyhow::Error::msg)?;
                let count = number_or(spec, "count", 1000).map_err(anyhow::Error::msg)?;
                Box::new(KeysReader::with_generator(
                    pattern_source(generator),
                    no_scan,
                    Some(count as usize),
                ))
            }
            _ => return Ok(None),
        };
        Ok(Some(reader))
    }

    fn enter_worker(&self, exec: &Arc<Execution>) -> Box<dyn std::any::Any> {
        super::thread_state::keep();
        Box::new(super::interrupt::Interruptible::enter(exec.clone()))
    }
}
