//! Handles into the python-shim, kept once the interpreter has started: the `gears`
//! package (a session's globals) and the classes fused runs and generators use.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyDict;

static GEARS: OnceLock<Py<PyModule>> = OnceLock::new();
static FUSED_RUN: OnceLock<Py<PyAny>> = OnceLock::new();
static GENERATOR_READER: OnceLock<Py<PyAny>> = OnceLock::new();
static FORGET_INTERRUPTED: OnceLock<Py<PyAny>> = OnceLock::new();

/// Keeps the handles (at start-up, once `gears` and `gears._fused` are imported).
pub fn keep(gears: Bound<'_, PyModule>, fused: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = FUSED_RUN.set(fused.getattr("FusedRun")?.unbind());
    let _ = GENERATOR_READER.set(fused.getattr("GeneratorReader")?.unbind());
    let runtime = gears.py().import("gears.runtime")?;
    let _ = FORGET_INTERRUPTED.set(runtime.getattr("_forget_interrupted")?.unbind());
    let _ = GEARS.set(gears.unbind());
    Ok(())
}

fn not_started() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("Python is not initialised")
}

fn handle<'py>(py: Python<'py>, cell: &OnceLock<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    cell.get()
        .map(|h| h.bind(py).clone())
        .ok_or_else(not_started)
}

pub fn fused_run_class(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    handle(py, &FUSED_RUN)
}

pub fn generator_reader_class(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    handle(py, &GENERATOR_READER)
}

/// Resets the shim's per-thread state after an asynchronous abort stopped this thread's
/// outermost run (`gears.runtime._forget_interrupted`). An error being raised is kept.
pub fn forget_interrupted(py: Python<'_>) {
    let raising = PyErr::take(py);
    if let Ok(forget) = handle(py, &FORGET_INTERRUPTED) {
        // Two assignments: nothing in it can fail but a MemoryError, which leaves the
        // next run to report the stale state.
        let _ = forget.call0();
    }
    if let Some(e) = raising {
        e.restore(py);
    }
}

/// A new session's globals: builtins plus every name of `gears.__all__`.
pub fn new_globals(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let globals = PyDict::new(py);
    globals.set_item("__builtins__", py.import("builtins")?)?;
    globals.set_item("__name__", "__main__")?;
    let gears = GEARS.get().ok_or_else(not_started)?.bind(py);
    for name in gears.getattr("__all__")?.try_iter()? {
        let name = name?;
        globals.set_item(&name, gears.getattr(name.str()?)?)?;
    }
    Ok(globals)
}
