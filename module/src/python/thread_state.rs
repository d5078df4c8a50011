//! A pool worker keeps one CPython thread state for its whole life.
//!
//! Without it, every `Python::attach` on a thread with no thread state creates one and
//! deletes it on the way out (an allocation, a mmap'd data stack, the thread list under
//! the runtime's lock): about 20 µs, paid per batch by every worker run, trigger and
//! stream batch. Created once by `PyGILState_Ensure` and left bound to the thread, it is
//! found again by each later `PyGILState_Ensure` (which is what `Python::attach` calls),
//! and only the GIL changes hands.
//!
//! What differs: state a run leaves on its thread (the asyncio running-loop marker, the
//! shim's thread-locals) is seen by the next run of that thread. Runs restore it in
//! `finally` blocks; an asynchronous abort can skip those, so the interrupt paths call
//! `shim::forget_interrupted` (interrupt.rs, watchdog.rs).
//! Never on the main thread: Redis's main thread already has CPython's main thread state.

use std::cell::Cell;

use pyo3::ffi;

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Gives this thread a thread state that outlives every `Python::attach` on it. Call it
/// on a pool worker, with Python initialised and without the GIL.
pub fn keep() {
    if KEPT.with(Cell::get) || crate::redis::lock::on_main_thread() {
        return;
    }
    // SAFETY: PyGILState_Check only reads this thread's state (the interpreter is
    // initialised: a Python host exists).
    if unsafe { ffi::PyGILState_Check() } != 0 {
        return; // called under the GIL: giving it back here would pull it from under the caller
    }
    // SAFETY: the interpreter is initialised and this thread does not hold the GIL
    // (checked above). PyGILState_Ensure creates this
    // thread's state and takes the GIL; PyEval_SaveThread gives the GIL back and leaves
    // the state bound to the thread with its gilstate count at 1, so no later
    // PyGILState_Release deletes it. The thread state is freed by CPython only if the
    // interpreter is finalised, which the module never does.
    unsafe {
        let _ = ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
    KEPT.with(|k| k.set(true));
}
