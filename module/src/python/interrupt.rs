//! Stopping Python code that runs on a worker: RG.ABORTEXECUTION raises
//! `ExecutionAborted` asynchronously in the worker's thread.

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

/// While it lives, RG.ABORTEXECUTION of `exec` interrupts the Python code of this worker;
/// dropped, it also clears an abort that arrived after the code had finished.
pub struct Interruptible(Arc<Execution>);

impl Interruptible {
    pub fn enter(exec: Arc<Execution>) -> Interruptible {
        exec.set_interrupt(Some(for_current_thread()));
        Interruptible(exec)
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        self.0.set_interrupt(None);
        clear_current_thread();
    }
}
