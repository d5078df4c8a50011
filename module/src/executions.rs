//! Starting executions on the main thread or the worker pool, and their replies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::{self, Key};
use crate::engine::compile::Stage;
use crate::engine::execution::{ExecState, Execution, Status};
use crate::engine::reader::Reader;
use crate::engine::registry::Limits;
use crate::engine::run::{run, RunEnv};
use crate::engine::value::Value;
use crate::python::interrupt;
use crate::redis::{door, lock};
use crate::state::globals;

fn env() -> RunEnv<'static> {
    RunEnv {
        batch_size: config::get(Key::BatchSize).max(1) as usize,
        profile: config::get(Key::ProfileExecutions) == 1,
        end_batch: &lock::release_slice,
        after_record: &trim,
    }
}

/// Keeps the registry within MaxExecutions / MaxExecutionsPerRegistration /
/// MaxResultsBytes once `exec` has finished.
pub fn trim(exec: &Execution) {
    let limits = Limits {
        max: config::get(Key::MaxExecutions).max(1) as usize,
        per_registration: config::get(Key::MaxExecutionsPerRegistration).max(0) as usize,
        max_bytes: config::get(Key::MaxResultsBytes).max(0) as usize,
    };
    globals().registry.finished(exec, &limits);
}

thread_local! {
    /// The executions running on this thread, innermost last (a hook's call_next runs
    /// the next hook inside the current one).
    static CURRENT: std::cell::RefCell<Vec<(u64, Arc<AtomicBool>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The sequence number of the execution running on this thread, if any.
pub fn current_execution() -> Option<u64> {
    CURRENT.with(|c| c.borrow().last().map(|(seq, _)| *seq))
}

/// The abort flag of the execution running on this thread, if any.
pub fn current_abort_flag() -> Option<Arc<AtomicBool>> {
    CURRENT.with(|c| c.borrow().last().map(|(_, flag)| flag.clone()))
}

/// Whether RG.ABORTEXECUTION asked the execution running on this thread to stop.
pub fn abort_requested_here() -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .last()
            .is_some_and(|(_, flag)| flag.load(Ordering::Acquire))
    })
}

fn run_marked(exec: &Execution, reader: Box<dyn Reader>, stages: Vec<Stage>) {
    let _acting = door::act_as(&exec.run_as);
    CURRENT.with(|c| c.borrow_mut().push((exec.seq, exec.abort_flag())));
    run(exec, reader, stages, &env());
    CURRENT.with(|c| c.borrow_mut().pop());
}

/// Runs an execution here, on this thread (sync mode, or inline).
pub fn run_here(exec: &Execution, reader: Box<dyn Reader>, stages: Vec<Stage>) {
    run_marked(exec, reader, stages);
}

/// Runs an execution on the worker pool.
pub fn submit(exec: Arc<Execution>, reader: Box<dyn Reader>, stages: Vec<Stage>, python: bool) {
    globals()
        .pool
        .submit(move || run_on_worker(&exec, reader, stages, python));
}

/// Runs after an execution ends, on the thread that ran it, holding no lock.
pub type Then = Box<dyn FnOnce(&Execution) + Send>;

/// Runs an execution on the worker pool, compiling its stages there (compiling a Python
/// plan takes the GIL, which the main thread must not wait for).
pub fn submit_compiled(
    exec: Arc<Execution>,
    reader: Box<dyn Reader>,
    python: bool,
    then: Option<Then>,
    stages: impl FnOnce() -> anyhow::Result<Vec<Stage>> + Send + 'static,
) {
    globals().pool.submit(move || {
        match stages() {
            Ok(stages) => run_on_worker(&exec, reader, stages, python),
            Err(e) => fail(&exec, format!("{e:#}")),
        }
        if let Some(then) = then {
            then(&exec);
            lock::release_slice();
        }
    });
}

/// Ends an execution that could not start (its plan did not compile).
pub fn fail(exec: &Execution, error: String) {
    if exec.record(Vec::new(), vec![error], Status::Done, 0, 0, Vec::new()) {
        trim(exec);
        exec.answer_waiters();
    }
}

fn run_on_worker(exec: &Execution, reader: Box<dyn Reader>, stages: Vec<Stage>, python: bool) {
    if python {
        exec.set_interrupt(Some(interrupt::for_current_thread()));
    }
    run_marked(exec, reader, stages);
    lock::release_slice();
    if python {
        exec.set_interrupt(None);
        interrupt::clear_current_thread();
    }
}

/// `[[results...], [errors...]]`.
pub fn results_reply(st: &ExecState) -> Value {
    Value::List(vec![
        Value::List(st.results.clone()),
        Value::List(st.errors.iter().map(|e| Value::Str(e.clone())).collect()),
    ])
}
