//! Starting executions on the main thread or the worker pool, and their replies.

use std::sync::Arc;

use crate::config::{self, Key};
use crate::engine::compile::Stage;
use crate::engine::execution::{ExecState, Execution};
use crate::engine::reader::Reader;
use crate::engine::run::{run, RunEnv};
use crate::engine::value::Value;
use crate::python::interrupt;
use crate::redis::lock;
use crate::state::globals;

fn env() -> RunEnv<'static> {
    RunEnv {
        batch_size: config::get(Key::BatchSize).max(1) as usize,
        profile: config::get(Key::ProfileExecutions) == 1,
        end_batch: &lock::release_slice,
        after_record: &trim,
    }
}

fn trim() {
    globals()
        .registry
        .trim(config::get(Key::MaxExecutions).max(1) as usize);
}

/// Runs an execution here, on the main thread (sync mode).
pub fn run_here(exec: &Execution, reader: Box<dyn Reader>, stages: Vec<Stage>) {
    run(exec, reader, stages, &env());
}

/// Runs an execution on the worker pool.
pub fn submit(exec: Arc<Execution>, reader: Box<dyn Reader>, stages: Vec<Stage>, python: bool) {
    globals().pool.submit(move || {
        if python {
            exec.set_interrupt(Some(interrupt::for_current_thread()));
        }
        run(&exec, reader, stages, &env());
        lock::release_slice();
        if python {
            exec.set_interrupt(None);
            interrupt::clear_current_thread();
        }
    });
}

/// `[[results...], [errors...]]`.
pub fn results_reply(st: &ExecState) -> Value {
    Value::List(vec![
        Value::List(st.results.clone()),
        Value::List(st.errors.iter().map(|e| Value::Str(e.clone())).collect()),
    ])
}
