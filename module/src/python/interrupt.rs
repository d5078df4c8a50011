//! Stopping Python code that runs on a worker: RG.ABORTEXECUTION raises
//! `ExecutionAborted` asynchronously in the worker's thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use super::errors::ExecutionAborted;
use crate::engine::execution::Execution;

fn thread_ident() -> std::os::raw::c_ulong {
    // CPython identifies threads by pthread_self() (threading.get_ident()).
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as std::os::raw::c_ulong }
}

fn set_async_exc(_py: Python<'_>, ident: std::os::raw::c_ulong, exc: &Bound<'_, PyAny>) {
    // SAFETY: the GIL is held (`_py`), as SetAsyncExc requires; `exc` is a live object
    // borrowed for the call, of which SetAsyncExc takes its own reference. It finds the
    // thread by id under CPython's own lock: an id with no thread state (the thread
    // ended) changes nothing.
    unsafe {
        pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr());
    }
}

/// Raises, here, an asynchronous exception left pending for this thread, and drops it
/// (an error being raised meanwhile is kept).
///
/// Clearing it with `SetAsyncExc(NULL)` is not enough: CPython (3.11) lowers its
/// interpreter-wide "async exception pending" flag only when a thread takes one, so the
/// flag would stay up for good. Every thread would then take the eval loop's slow path at
/// each function entry and loop, and a thread with a profiler on (RG.PYPROFILE) would spin
/// forever on a function's first instruction. Running a line of Python takes it instead.
pub fn drop_pending_async_exc(py: Python<'_>) {
    let raising = PyErr::take(py);
    // A code object checks the eval breaker on entry: the pending exception is raised
    // there, and ends this run; nothing else can fail here.
    let _ = py.run(c"pass", None, None);
    if let Some(e) = raising {
        e.restore(py);
    }
}

/// While it lives, RG.ABORTEXECUTION of `exec` interrupts the Python code of this worker
/// (by raising `ExecutionAborted` in it asynchronously); dropped, it takes back an abort
/// that arrived after the code had finished, so it cannot hit the next execution.
pub struct Interruptible {
    exec: Arc<Execution>,
    fired: Arc<AtomicBool>,
}

impl Interruptible {
    pub fn enter(exec: Arc<Execution>) -> Interruptible {
        let ident = thread_ident();
        let fired = Arc::new(AtomicBool::new(false));
        let seen = fired.clone();
        exec.set_interrupt(Some(Arc::new(move || {
            Python::attach(|py| {
                seen.store(true, Ordering::Release);
                set_async_exc(py, ident, ExecutionAborted::type_object(py).as_any());
            })
        })));
        Interruptible { exec, fired }
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        // Once this returns no interrupt is running or can start (the execution holds its
        // interrupt's lock while calling it).
        self.exec.set_interrupt(None);
        if self.fired.load(Ordering::Acquire) {
            Python::attach(|py| {
                drop_pending_async_exc(py);
                super::shim::forget_interrupted(py);
            });
        }
    }
}
