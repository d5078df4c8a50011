//! Nothing Python runs may hold Redis for good, and an abort cannot be swallowed.
//!
//! Every entry into user Python code is a `Watch` (a guard) that lists its thread in a
//! table: whether it holds Redis right now (the main thread, a worker inside a Redis call,
//! an `atomic()` block) and since when, and the abort flag of its execution. One watchdog
//! thread, started at load, looks at the table every few ms. It never waits for the Redis
//! lock; it takes the GIL only when it has something to do. A thread that held Redis
//! longer than PythonMaxLockMillis, or whose execution was aborted, gets `ExecutionAborted`
//! raised asynchronously, again every `RERAISE` until its entry ends, and a C trace
//! function that raises it again at every line of user code: a bare `except:` cannot
//! keep the code running (the handler's own lines raise again). Frames of the gears
//! package are spared, so `atomic().__exit__` still gives the Redis lock back.
//!
//! Lock order: the GIL, then TABLE. Nobody waits for the GIL while holding TABLE.

use std::ffi::CStr;
use std::os::raw::{c_int, c_ulong};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyTypeInfo;

use super::errors::ExecutionAborted;
use crate::config::{self, Key};
use crate::redis::lock;

/// How often the watchdog looks at the table.
const TICK: Duration = Duration::from_millis(10);
/// How often an interrupted thread gets the exception raised again.
const RERAISE: Duration = Duration::from_millis(50);

/// Why a thread's Python code is being stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fired {
    /// RG.ABORTEXECUTION.
    Aborted,
    /// It held Redis for more than this many ms (PythonMaxLockMillis).
    OverBudget(i64),
}

impl Fired {
    /// The error entry of an execution stopped for this reason (None: a plain abort).
    pub fn error(self) -> Option<String> {
        match self {
            Fired::Aborted => None,
            Fired::OverBudget(ms) => Some(format!(
                "Execution was aborted: it held Redis for more than {ms} ms (PythonMaxLockMillis)"
            )),
        }
    }
}

struct Frame {
    atomic: bool,
    /// Since when this frame holds Redis, if it does.
    holds: Option<Instant>,
}

struct Entry {
    ident: c_ulong,
    /// The thread's state, for the tracer; None when no `StateGuard` could be put in
    /// place (out of memory), as it could then dangle.
    tstate: Option<*mut ffi::PyThreadState>,
    frames: Vec<Frame>,
    abort: Option<Arc<AtomicBool>>,
    fired: Option<Fired>,
    raised: Option<Instant>,
}

// SAFETY: Entry is Send only to live in TABLE. Its one !Send field, `tstate`, is only
// handed to CPython, by the watchdog in `act`, with the GIL and TABLE held, and it is
// live whenever `act` finds the entry listed: a thread state is torn down by its own
// thread with the GIL held, PyThreadState_Clear (which clears its dict) first, then
// unlinked and freed (as pyo3's outermost attach ends, or the thread exits). The entry
// is Some only once a `StateGuard` sits in that dict, whose drop, in that Clear, under
// the GIL, removes the entry: before the state can go, and never while `act` runs.
// Usually `pop_to` removes it earlier; the guard also covers an entry left behind (a
// thread ending inside an `atomic()` it never left, a leaked `Watch`).
unsafe impl Send for Entry {}

/// Sits in a thread state's dict: when CPython clears that dict, just before it deletes
/// the thread state, the watchdog forgets the entries that point to it.
#[pyclass(frozen)]
struct StateGuard {
    tstate: usize,
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        let tstate = self.tstate as *mut ffi::PyThreadState;
        table().retain(|e| e.tstate != Some(tstate));
    }
}

const GUARD_KEY: &str = "gears.watchdog.state_guard";

/// Puts a `StateGuard` for this thread's state in its dict, once; false if it could not.
fn guard_state(py: Python<'_>, tstate: *mut ffi::PyThreadState) -> bool {
    // SAFETY: the GIL is held (`py`). PyThreadState_GetDict returns the current thread
    // state's dict, made if need be, as a borrowed reference (NULL, with no exception
    // set, if it cannot).
    let dict = unsafe { ffi::PyThreadState_GetDict() };
    if dict.is_null() {
        return false;
    }
    // SAFETY: a live dict, borrowed from the thread state, which outlives this call;
    // from_borrowed_ptr takes a reference of its own.
    let dict = unsafe { Bound::from_borrowed_ptr(py, dict) };
    let Ok(dict) = dict.cast_into::<PyDict>() else {
        return false;
    };
    match dict.contains(GUARD_KEY) {
        Ok(true) => true,
        Ok(false) => Py::new(
            py,
            StateGuard {
                tstate: tstate as usize,
            },
        )
        .and_then(|guard| dict.set_item(GUARD_KEY, guard))
        .is_ok(),
        Err(_) => false,
    }
}

static OVER_BUDGET: AtomicU64 = AtomicU64::new(0);
static ABORTED: AtomicU64 = AtomicU64::new(0);

/// How many times Python code was interrupted: (over budget, aborted).
pub fn interruptions() -> (u64, u64) {
    (
        OVER_BUDGET.load(Ordering::Relaxed),
        ABORTED.load(Ordering::Relaxed),
    )
}

static TABLE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static ABORTED_TYPE: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
/// Files under this folder (the python-shim) are spared by the tracer.
static SHIM_DIR: OnceLock<String> = OnceLock::new();

fn table() -> MutexGuard<'static, Vec<Entry>> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

fn thread_ident() -> c_ulong {
    // SAFETY: pthread_self has no preconditions and cannot fail. (CPython's thread ids,
    // threading.get_ident() and PyThreadState_SetAsyncExc's, are pthread ids.)
    unsafe { libc::pthread_self() as c_ulong }
}

/// Starts the watchdog thread. Called once at load, after the interpreter started.
pub fn start(py: Python<'_>, shim_dir: &str) -> std::io::Result<()> {
    let _ = SHIM_DIR.set(shim_dir.to_string());
    let ty = ExecutionAborted::type_object(py);
    // The type object lives as long as the interpreter: keep one reference forever.
    ABORTED_TYPE.store(ty.into_any().unbind().into_ptr(), Ordering::Release);
    std::thread::Builder::new()
        .name("gears-watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(TICK);
            if something_due(Instant::now()) {
                Python::attach(|_py| act(Instant::now()));
            }
        })
        .map(|_| ())
}

fn due(e: &Entry, now: Instant, budget: Duration) -> Option<Fired> {
    match e.fired {
        Some(f) => e
            .raised
            .is_none_or(|r| now.duration_since(r) >= RERAISE)
            .then_some(f),
        None => {
            if e.abort.as_ref().is_some_and(|a| a.load(Ordering::Acquire)) {
                return Some(Fired::Aborted);
            }
            let since = e.frames.iter().find_map(|f| f.holds)?;
            (now.duration_since(since) > budget)
                .then_some(Fired::OverBudget(budget.as_millis() as i64))
        }
    }
}

fn budget() -> Duration {
    Duration::from_millis(config::get(Key::PythonMaxLockMillis).max(1) as u64)
}

fn something_due(now: Instant) -> bool {
    let budget = budget();
    table().iter().any(|e| due(e, now, budget).is_some())
}

/// With the GIL: raises in every thread that is due.
fn act(now: Instant) {
    let budget = budget();
    let ty = ABORTED_TYPE.load(Ordering::Acquire);
    for e in table().iter_mut() {
        let Some(fired) = due(e, now, budget) else {
            continue;
        };
        if e.fired.is_none() {
            e.fired = Some(fired);
            let count = match fired {
                Fired::Aborted => &ABORTED,
                Fired::OverBudget(_) => &OVER_BUDGET,
            };
            count.fetch_add(1, Ordering::Relaxed);
            if let Fired::OverBudget(ms) = fired {
                redis_module::logging::log_warning(format!(
                    "gears: Python code held Redis for more than {ms} ms (PythonMaxLockMillis); interrupting it"
                ));
            }
        }
        e.raised = Some(now);
        // SAFETY: the GIL is held (`act` runs inside Python::attach). A thread state
        // of a listed entry is live (see Entry's Send); setting another thread's trace
        // function is what _PyEval_SetTrace is exported for (debuggers), with the GIL.
        // SetAsyncExc finds the thread by id itself (none found: nothing happens), and
        // `ty` is the ExecutionAborted type, kept alive forever by `start`.
        unsafe {
            if let Some(tstate) = e.tstate {
                _PyEval_SetTrace(tstate, Some(abort_tracer), std::ptr::null_mut());
            }
            ffi::PyThreadState_SetAsyncExc(e.ident as _, ty);
        }
    }
}

extern "C" {
    /// CPython's per-thread-state `sys.settrace` (exported; what debuggers use to trace a
    /// thread other than the calling one). The signature is CPython's in 3.9 to 3.12
    /// (Include/cpython/ceval.h; the build uses 3.11); the GIL must be held and `tstate`
    /// live. A CPython without the symbol fails at load, not here.
    fn _PyEval_SetTrace(
        tstate: *mut ffi::PyThreadState,
        func: Option<ffi::Py_tracefunc>,
        arg: *mut ffi::PyObject,
    ) -> c_int;
}

/// True when `frame` runs code of the python-shim (spared, so it can clean up).
///
/// # Safety
/// The GIL is held and `frame` is a live frame.
unsafe fn shim_frame(frame: *mut ffi::PyFrameObject) -> bool {
    let Some(dir) = SHIM_DIR.get() else {
        return false;
    };
    // SAFETY: the GIL is held and `frame` is live (the function's contract).
    // PyFrame_GetCode and PyObject_GetAttrString return new references or NULL (checked,
    // with the error cleared); both are released once. The UTF-8 buffer belongs to
    // `name` and is read before `name` is released.
    unsafe {
        let code = ffi::PyFrame_GetCode(frame);
        if code.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let name = ffi::PyObject_GetAttrString(code.cast(), c"co_filename".as_ptr());
        ffi::Py_DECREF(code.cast());
        if name.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let utf8 = ffi::PyUnicode_AsUTF8(name);
        let spared = !utf8.is_null() && CStr::from_ptr(utf8).to_bytes().starts_with(dir.as_bytes());
        if utf8.is_null() {
            ffi::PyErr_Clear();
        }
        ffi::Py_DECREF(name);
        spared
    }
}

/// Raises `ExecutionAborted` at every call and line of user code.
///
/// # Safety
/// Only CPython may call it, as a trace function (`Py_tracefunc`): with the GIL held
/// and `frame` a live frame of the traced thread. `act` installs it only after `start`
/// has set ABORTED_TYPE.
unsafe extern "C" fn abort_tracer(
    _obj: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    what: c_int,
    _arg: *mut ffi::PyObject,
) -> c_int {
    if what != ffi::PyTrace_LINE && what != ffi::PyTrace_CALL {
        return 0;
    }
    // SAFETY: the GIL is held and `frame` is live (the function's contract), which is
    // `shim_frame`'s contract too. ABORTED_TYPE is the ExecutionAborted type (set before
    // any tracer is installed, never freed) and the message a static C string; a
    // tracer returning -1 with an exception set is how CPython expects it to raise.
    unsafe {
        if shim_frame(frame) {
            return 0;
        }
        ffi::PyErr_SetString(
            ABORTED_TYPE.load(Ordering::Acquire),
            c"Execution was aborted".as_ptr(),
        );
    }
    -1
}

/// Lists a frame for this thread; returns how many frames it had before.
fn push(py: Python<'_>, frame: Frame, abort: Option<Arc<AtomicBool>>) -> usize {
    let ident = thread_ident();
    if !table().iter().any(|e| e.ident == ident) {
        // SAFETY: the GIL is held (`py`), so this thread has a current thread state and
        // PyThreadState_Get returns it (it aborts rather than return NULL).
        let tstate = unsafe { ffi::PyThreadState_Get() };
        // Without TABLE held: filling the dict may run Python code (a collection), which
        // may push (and pop) on this thread too.
        let guarded = guard_state(py, tstate);
        let mut t = table();
        if !t.iter().any(|e| e.ident == ident) {
            t.push(Entry {
                ident,
                tstate: guarded.then_some(tstate),
                frames: Vec::new(),
                abort: None,
                fired: None,
                raised: None,
            });
        }
    }
    // Only this thread removes its entry, but for its state's guard, which cannot run
    // while this thread runs on that state: the entry is there.
    let mut t = table();
    let Some(e) = t.iter_mut().find(|e| e.ident == ident) else {
        return 0;
    };
    let depth = e.frames.len();
    e.frames.push(frame);
    if e.abort.is_none() {
        e.abort = abort;
    }
    depth
}

/// Pops this thread's frames down to `depth`; the last one out stops the raising.
fn pop_to(py: Python<'_>, depth: usize) {
    let ident = thread_ident();
    let stopped = {
        let mut t = table();
        let Some(i) = t.iter().position(|e| e.ident == ident) else {
            return;
        };
        t[i].frames.truncate(depth);
        if !t[i].frames.is_empty() {
            return;
        }
        t.swap_remove(i).fired.is_some()
    };
    if stopped {
        // SAFETY: the GIL is held (`py`); PyEval_SetTrace with no function removes this
        // thread's trace function. The watchdog can no longer raise here: the entry is
        // gone and it raises only with the GIL.
        unsafe {
            ffi::PyEval_SetTrace(None, std::ptr::null_mut());
        }
        // An exception it left pending for this thread is taken here, not carried on.
        super::interrupt::drop_pending_async_exc(py);
        super::shim::forget_interrupted(py);
    }
}

/// Why this thread is being stopped, if it is.
pub fn fired_here() -> Option<Fired> {
    let ident = thread_ident();
    table()
        .iter()
        .find(|e| e.ident == ident)
        .and_then(|e| e.fired)
}

/// An entry into user Python code, watched until it is dropped (with the GIL held).
pub struct Watch<'py> {
    depth: usize,
    _py: Python<'py>,
}

/// Watches the Python code this thread runs from now on. Holding Redis (the main
/// thread, or a worker inside a Redis call) counts against PythonMaxLockMillis.
pub fn enter(py: Python<'_>) -> Watch<'_> {
    let holds = (lock::on_main_thread() || lock::in_call()).then(Instant::now);
    let depth = push(
        py,
        Frame {
            atomic: false,
            holds,
        },
        crate::host_api::abort_flag(),
    );
    Watch { depth, _py: py }
}

impl Watch<'_> {
    /// Why the code was stopped, if the watchdog stopped it.
    pub fn fired(&self) -> Option<Fired> {
        fired_here()
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.depth == 0 {
            // An atomic() block the code left open ends with it: never keep Redis locked.
            lock::atomic_reset();
        }
        pop_to(self._py, self.depth);
    }
}

/// An `atomic()` block starts (the Redis lock is held): it counts against the budget.
pub fn atomic_entered(py: Python<'_>) {
    push(
        py,
        Frame {
            atomic: true,
            holds: Some(Instant::now()),
        },
        None,
    );
}

/// An `atomic()` block ends.
pub fn atomic_left(py: Python<'_>) {
    let ident = thread_ident();
    let depth = {
        let t = table();
        let Some(e) = t.iter().find(|e| e.ident == ident) else {
            return;
        };
        match e.frames.last() {
            Some(f) if f.atomic => e.frames.len() - 1,
            _ => return,
        }
    };
    pop_to(py, depth);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that ends inside an `atomic()` it never left: its entry must go with its
    /// thread state, or the watchdog would later hand CPython a freed one.
    #[test]
    fn an_entry_goes_with_its_thread_state() {
        Python::initialize();
        let ident = std::thread::spawn(|| {
            Python::attach(|py| {
                atomic_entered(py);
                let me = thread_ident();
                assert!(table().iter().any(|e| e.ident == me && e.tstate.is_some()));
            });
            thread_ident()
        })
        .join()
        .unwrap();
        assert!(table().iter().all(|e| e.ident != ident));
    }
}
