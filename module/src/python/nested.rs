//! Runs that a step starts: `GB().run()` called inside a step of a running execution (an
//! `async def` step awaits it, as in RedisGears 1.2). The run starts on the worker pool,
//! on this shard, acting for the execution that started it; the step polls for its
//! outcome (`take`), which forgets the run once read.

use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::builder;
use super::convert::to_py;
use super::host::PythonHost;
use crate::config::{self, Key};
use crate::engine::plan::Plan;
use crate::engine::reader::Reader;
use crate::globals::globals;
use crate::launch;
use crate::plans::readers::reader_of;
use crate::redis::lock as redis_lock;

/// Starts the run of a step; its execution id.
pub fn start(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<String> {
    let parent = launch::current_execution()
        .filter(|_| !redis_lock::on_main_thread())
        .and_then(|seq| globals().registry.by_seq(seq))
        .ok_or_else(|| {
            PyRuntimeError::new_err(
                "run() can only be called by a script sent with RG.PYEXECUTE, or by a step \
                 of an async execution (which awaits its results)",
            )
        })?;
    let (plan, reader) = run_plan(py, reader, reader_args, steps, options)?;
    let exec = globals()
        .registry
        .create(None, plan.reports(), parent.run_as.clone());
    let id = exec.id.clone();
    launch::submit_compiled(exec, Arc::new(plan), reader, None, || {});
    Ok(id)
}

/// The plan of a `run()` (of a script or of a step) and its reader. Its steps are
/// what other shards receive as bytes (registrations travel as their session's source).
pub fn run_plan(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<(Plan, Box<dyn Reader>)> {
    let traceback = config::get(Key::PythonAttemptTraceback) == 1;
    let plan = builder::plan(py, reader, reader_args, steps, options)?
        .travelled(&|_, reference| PythonHost::resolve(reference, traceback))
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    let reader = reader_of(&plan).map_err(py_err)?;
    Ok((plan, reader))
}

/// A failure of the plan's host as the Python exception it was, if it was one.
fn py_err(e: anyhow::Error) -> PyErr {
    match e.downcast::<PyErr>() {
        Ok(e) => e,
        Err(e) => PyValueError::new_err(format!("{e:#}")),
    }
}

/// `None` while run `id` goes on; then `[results, errors]`, and the run is forgotten.
pub fn take<'py>(py: Python<'py>, id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let exec = globals()
        .registry
        .get(id)
        .ok_or_else(|| PyRuntimeError::new_err("execution plan does not exist"))?;
    let outcome = {
        let st = exec.state();
        if !st.status.is_finished() {
            return Ok(None);
        }
        to_py(py, &launch::results_reply(&st))?
    };
    globals().registry.forget(&exec);
    Ok(Some(outcome))
}
