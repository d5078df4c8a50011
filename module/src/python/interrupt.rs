//! Stopping Python code that runs on a worker: RG.ABORTEXECUTION raises
//! `ExecutionAborted` asynchronously in the worker's thread.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use super::native::ExecutionAborted;

fn thread_ident() -> std::os::raw::c_ulong {
    // CPython identifies threads by pthread_self() (threading.get_ident()).
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as std::os::raw::c_ulong }
}

fn set_async_exc(_py: Python<'_>, ident: std::os::raw::c_ulong, exc: Option<&Bound<'_, PyAny>>) {
    let ptr = exc.map_or(std::ptr::null_mut(), |e| e.as_ptr());
    // SAFETY: the GIL is held (`_py`), as SetAsyncExc requires. `ptr` is NULL (clears a
    // pending exception) or a live object borrowed for the call, of which SetAsyncExc
    // takes its own reference. It finds the thread by id under CPython's own lock: an id
    // with no thread state (the thread ended) changes nothing.
    unsafe {
        pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, ptr);
    }
}

/// An interrupt for the calling worker thread, to be called from any thread.
pub fn for_current_thread() -> Arc<dyn Fn() + Send + Sync> {
    let ident = thread_ident();
    Arc::new(move || {
        Python::attach(|py| {
            let exc = ExecutionAborted::type_object(py);
            set_async_exc(py, ident, Some(exc.as_any()));
        })
    })
}

/// Clears an abort that arrived after the execution's Python code had finished, so it
/// cannot hit the next execution of this worker.
pub fn clear_current_thread() {
    let ident = thread_ident();
    Python::attach(|py| set_async_exc(py, ident, None));
}
