//! `_gears`: the native module the python-shim calls into.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::wrap_pyfunction;

use super::convert::to_py;
use super::errors::{ExecutionAborted, GearsError};
use crate::engine::value::Value;
use crate::host_api::{self, Caller};
use crate::redis::lock as redis_lock;

/// Runs `f` once this thread may touch Redis, never waiting for the Redis lock with
/// the GIL held (the main thread could be waiting for the GIL while holding Redis).
pub fn with_redis<R>(py: Python<'_>, f: impl FnOnce() -> R) -> R {
    if redis_lock::needs_wait() {
        py.detach(redis_lock::ensure_locked);
    }
    let r = f();
    redis_lock::after_call();
    r
}

fn arg_bytes(arg: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = arg.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes().to_vec())
    } else if let Ok(b) = arg.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else {
        // As RedisGears 1.2: any other object is sent as its str() (numbers, bools,
        // dicts, None...).
        Ok(arg.str()?.to_str()?.as_bytes().to_vec())
    }
}

fn reply_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Error(e) => Err(GearsError::new_err(e.clone())),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                // Error elements inside arrays (e.g. EXEC) stay values, not exceptions.
                match item {
                    Value::Error(e) => list.append(GearsError::new_err(e.clone()).value(py))?,
                    other => list.append(reply_to_py(py, other)?)?,
                }
            }
            Ok(list.into_any())
        }
        other => to_py(py, other),
    }
}

#[pyfunction]
#[pyo3(signature = (command, *args))]
fn execute<'py>(
    py: Python<'py>,
    command: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(arg_bytes(command)?);
    for a in args.iter() {
        argv.push(arg_bytes(&a)?);
    }
    if super::script::restoring() {
        // Re-creating a session on load or on a replica repeats none of its side effects.
        return Ok(py.None().into_bound(py));
    }
    let reply = with_redis(py, || host_api::execute(Caller::Python, &argv));
    reply_to_py(py, &reply)
}

#[pyfunction]
fn lock(py: Python<'_>) {
    py.detach(redis_lock::atomic_enter);
    super::watchdog::atomic_entered(py);
}

#[pyfunction]
fn unlock(py: Python<'_>) {
    redis_lock::atomic_exit();
    super::watchdog::atomic_left(py);
}

#[pyfunction]
fn in_atomic() -> bool {
    redis_lock::in_atomic()
}

#[pyfunction]
fn release_lock_slice() {
    redis_lock::release_slice();
}

#[pyfunction]
#[pyo3(signature = (msg, level = "notice"))]
fn log(msg: &Bound<'_, PyAny>, level: &str) -> PyResult<()> {
    host_api::log(level, msg.str()?.to_str()?).map_err(GearsError::new_err)
}

#[pyfunction]
fn config_get(name: &str) -> Option<String> {
    host_api::config_get(name)
}

#[pyfunction]
fn hashtag() -> String {
    host_api::hashtag()
}

/// Whether a step may return a future or a coroutine: on a worker, or in a sync run on
/// the main thread that may move to the pool (`launch::Movable`).
#[pyfunction]
fn is_async_allowed() -> bool {
    !redis_lock::on_main_thread() || crate::launch::may_move_here()
}

#[pyfunction]
fn on_main_thread() -> bool {
    redis_lock::on_main_thread()
}

#[pyfunction]
fn run(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Option<String>> {
    super::script::on_run(py, reader, reader_args, steps, options)
}

/// The outcome of a run a step started: None while it goes on.
#[pyfunction]
fn take_results<'py>(py: Python<'py>, id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    super::nested::take(py, id)
}

#[pyfunction(name = "register")]
fn register_plan(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Option<String>> {
    super::script::on_register(py, reader, reader_args, steps, options)
}

fn to_args(args: &Bound<'_, PyTuple>) -> PyResult<Vec<Vec<u8>>> {
    args.iter().map(|a| arg_bytes(&a)).collect()
}

#[pyfunction]
#[pyo3(signature = (*args))]
fn call_next<'py>(py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let args = to_args(args)?;
    let reply = with_redis(py, || host_api::call_next(Caller::Python, args))
        .map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
    reply_to_py(py, &reply)
}

#[pyfunction]
fn override_reply(value: &Bound<'_, PyAny>) -> PyResult<()> {
    host_api::override_reply(super::convert::to_reply(value, true))
        .map_err(pyo3::exceptions::PyRuntimeError::new_err)
}

/// Creates `_gears` and puts it in `sys.modules`.
pub fn register(py: Python<'_>) -> PyResult<()> {
    let m = PyModule::new(py, "_gears")?;
    m.add_function(wrap_pyfunction!(execute, &m)?)?;
    m.add_function(wrap_pyfunction!(lock, &m)?)?;
    m.add_function(wrap_pyfunction!(unlock, &m)?)?;
    m.add_function(wrap_pyfunction!(release_lock_slice, &m)?)?;
    m.add_function(wrap_pyfunction!(in_atomic, &m)?)?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add_function(wrap_pyfunction!(config_get, &m)?)?;
    m.add_function(wrap_pyfunction!(hashtag, &m)?)?;
    m.add_function(wrap_pyfunction!(is_async_allowed, &m)?)?;
    m.add_function(wrap_pyfunction!(on_main_thread, &m)?)?;
    m.add_function(wrap_pyfunction!(run, &m)?)?;
    m.add_function(wrap_pyfunction!(take_results, &m)?)?;
    m.add_function(wrap_pyfunction!(register_plan, &m)?)?;
    m.add_function(wrap_pyfunction!(call_next, &m)?)?;
    m.add_function(wrap_pyfunction!(override_reply, &m)?)?;
    m.add("GearsError", py.get_type::<GearsError>())?;
    m.add("ExecutionAborted", py.get_type::<ExecutionAborted>())?;
    // A panic in Rust code a step called: fused runs let it through, so the run fails.
    m.add(
        "PanicException",
        py.get_type::<pyo3::panic::PanicException>(),
    )?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("_gears", &m)?;
    Ok(())
}
