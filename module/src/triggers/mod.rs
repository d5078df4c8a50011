//! Event sources that start registered executions: keyspace events (more arrive with
//! streams, commands and timers).

pub mod command;
pub mod hooks;
pub mod keys;
pub mod stream;
pub mod timer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{self, Key};
use crate::engine::compile::compile;
use crate::engine::execution::{Execution, RunAs, Status, StepReport};
use crate::engine::plan::Mode;
use crate::engine::reader::Reader;
use crate::engine::registration::Registration;
use crate::executions::{fail, run_here, submit_compiled};
use crate::redis::lock;
use crate::state::globals;

/// Async events waiting for a worker (bounded by MaxPendingEvents).
static PENDING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while a command runs inside MULTI or Lua: its triggers cannot block the
    /// client, so they run inline.
    static FORCE_INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub fn set_force_inline(on: bool) {
    FORCE_INLINE.with(|f| f.set(on));
}

thread_local! {
    /// The database of the event being dispatched on this thread (a keyspace event's,
    /// or the client's of RG.TRIGGER or a hooked command), if any.
    static EVENT_DB: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// While it lives, registrations fired on this thread act on the event's database.
pub struct EventDb {
    previous: Option<i32>,
    _db: lock::DbScope,
}

impl Drop for EventDb {
    fn drop(&mut self) {
        EVENT_DB.with(|e| e.set(self.previous));
    }
}

/// Dispatches the events of this scope as happening in database `db`.
pub fn event_db(db: i32) -> EventDb {
    EventDb {
        previous: EVENT_DB.with(|e| e.replace(Some(db))),
        _db: lock::use_db(db),
    }
}

/// Whom an execution of `reg` acts for: its owner, in the event's database where the
/// event has one (keyspace, command), else in the registration's (streams, timers).
fn run_as_of(reg: &Registration) -> RunAs {
    let mut run_as = reg.run_as.clone();
    if let Some(db) = EVENT_DB.with(|e| e.get()) {
        if reg.trigger.reader() != "StreamReader" && reg.trigger.reader() != "TimeReader" {
            run_as.db = db;
        }
    }
    run_as
}

pub fn reports(reg: &Registration) -> Vec<StepReport> {
    reg.steps.iter().map(|s| s.report()).collect()
}

/// Whether `key` is under a registration's prefix: a prefix when it ends with '*', else
/// the exact key name.
pub fn prefix_matches(prefix: &str, key: &[u8]) -> bool {
    match prefix.strip_suffix('*') {
        Some(p) => key.starts_with(p.as_bytes()),
        None => key == prefix.as_bytes(),
    }
}

/// Called on a new execution before it can start.
pub type Prepare<'a> = &'a dyn Fn(&Arc<Execution>);

/// Runs after a triggered execution ends, on the thread that ran it, holding no lock.
pub type Then = Box<dyn FnOnce(&Execution) + Send>;

/// Starts one execution of `reg` over `reader`: here when sync (or when the async queue
/// is full), else on the worker pool.
pub fn fire(reg: &Arc<Registration>, reader: Box<dyn Reader>) -> Arc<Execution> {
    fire_then(reg, reader, None, None)
}

/// As `fire`, with `then` run once the execution has ended, and `prepare` called on the
/// new execution before it can start.
pub fn fire_then(
    reg: &Arc<Registration>,
    reader: Box<dyn Reader>,
    then: Option<Then>,
    prepare: Option<Prepare>,
) -> Arc<Execution> {
    let exec = globals()
        .registry
        .create(Some(reg.id.clone()), reports(reg), run_as_of(reg));
    if let Some(prepare) = prepare {
        prepare(&exec);
    }
    reg.stats().triggered += 1;
    let owner = reg.clone();
    exec.on_finish(Box::new(move |st| {
        owner.record_run(st.total_ms, &st.errors, st.status == Status::Aborted)
    }));
    let profile = config::get(Key::ProfileExecutions) == 1;
    let inline = reg.mode == Mode::Sync || FORCE_INLINE.with(|f| f.get()) || {
        let max = config::get(Key::MaxPendingEvents).max(1) as usize;
        let queued = PENDING.fetch_add(1, Ordering::AcqRel);
        if queued >= max {
            PENDING.fetch_sub(1, Ordering::AcqRel);
            reg.stats().overflows += 1;
            true
        } else {
            false
        }
    };
    if inline {
        match compile(&reg.steps, reg.host.as_ref(), profile, true) {
            Ok(stages) => run_here(&exec, reader, stages),
            Err(e) => fail(&exec, format!("{e:#}")),
        }
        if let Some(then) = then {
            then(&exec);
        }
        return exec;
    }
    let steps = reg.steps.clone();
    let host = reg.host.clone();
    let python = host.as_ref().is_some_and(|h| h.name() == "python");
    submit_compiled(exec.clone(), reader, python, then, move || {
        PENDING.fetch_sub(1, Ordering::AcqRel);
        compile(&steps, host.as_ref(), profile, false)
    });
    exec
}
