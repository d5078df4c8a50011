//! Event sources that start registered executions: keyspace events (keys.rs), stream
//! consumer groups (stream.rs), command hooks (hooks/, command.rs) and timers (timer.rs),
//! and `fire`, the one way an event starts an execution of a registration.

pub mod command;
pub mod event_chain;
pub mod hooks;
pub mod keys;
pub mod nested;
pub mod post_job;
pub mod stream;
pub mod timer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{self, Key};
use crate::engine::backlog::{self, Pending};
use crate::engine::execution::{Execution, RunAs, Status};
use crate::engine::plan::Mode;
use crate::engine::reader::Reader;
use crate::engine::registration::Registration;
use crate::globals::globals;
use crate::launch::{run_events, run_plan_here, Then};
use crate::redis::lock;

/// Async events waiting for a worker (bounded by MaxPendingEvents).
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Async events waiting for a worker now (INFO).
pub fn pending_events() -> usize {
    PENDING.load(Ordering::Relaxed)
}

thread_local! {
    /// Set while a command runs inside MULTI or Lua: its triggers cannot block the
    /// client, so they run inline.
    static FORCE_INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While it lives, registrations fired on this thread run inline when `on` (however the
/// scope ends: a panic in between must not leave the main thread forcing it).
pub struct ForceInline(bool);

impl Drop for ForceInline {
    fn drop(&mut self) {
        FORCE_INLINE.with(|f| f.set(self.0));
    }
}

pub fn force_inline(on: bool) -> ForceInline {
    ForceInline(FORCE_INLINE.with(|f| f.replace(on)))
}

/// Where the event being dispatched on this thread comes from: its database, and the
/// client that asked for it by name (RG.TRIGGER), whose permissions the run also needs.
#[derive(Clone)]
struct Origin {
    db: i32,
    invoker: Option<std::sync::Arc<str>>,
}

thread_local! {
    static ORIGIN: std::cell::RefCell<Option<Origin>> = const { std::cell::RefCell::new(None) };
}

/// While it lives, registrations fired on this thread act on the event's database (and
/// for its invoker too, if any).
pub struct EventScope {
    previous: Option<Origin>,
    _db: lock::DbScope,
}

impl Drop for EventScope {
    fn drop(&mut self) {
        ORIGIN.with(|o| *o.borrow_mut() = self.previous.take());
    }
}

/// Dispatches the events of this scope as happening in database `db`.
pub fn event_db(db: i32) -> EventScope {
    event_from(db, None)
}

/// As `event_db`, for an event a client asked for by name: the runs also need its
/// permissions, so no client gains the owner's.
pub fn event_from(db: i32, invoker: Option<&str>) -> EventScope {
    let origin = Origin {
        db,
        invoker: invoker.map(Into::into),
    };
    EventScope {
        previous: ORIGIN.with(|o| o.borrow_mut().replace(origin)),
        _db: lock::use_db(db),
    }
}

/// Whom an execution of `reg` acts for: its owner (and the client that asked for it),
/// in the event's database where the event has one (keyspace, command), else in the
/// registration's (streams, timers).
fn run_as_of(reg: &Registration) -> RunAs {
    let mut run_as = reg.run_as.clone();
    if let Some(origin) = ORIGIN.with(|o| o.borrow().clone()) {
        if reg.trigger.reader() != "StreamReader" && reg.trigger.reader() != "TimeReader" {
            run_as.db = origin.db;
        }
        run_as = run_as.invoked_by(origin.invoker);
    }
    run_as
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
        .create(Some(reg.id.clone()), reg.plan.reports(), run_as_of(reg));
    if let Some(prepare) = prepare {
        prepare(&exec);
    }
    reg.stats().triggered += 1;
    let owner = reg.clone();
    exec.on_finish(Box::new(move |st| {
        let aborted = st.status == Status::Aborted;
        owner.record_run(st.total_ms, &st.errors, aborted);
        if let (false, Some(error)) = (aborted, st.errors.first()) {
            log_failure(&owner, error);
        }
    }));
    let inline = reg.plan.mode == Mode::Sync || FORCE_INLINE.with(|f| f.get()) || {
        let max = config::get(Key::MaxPendingEvents).max(1) as usize;
        let queued = PENDING.fetch_add(1, Ordering::AcqRel);
        if queued >= max {
            PENDING.fetch_sub(1, Ordering::AcqRel);
            reg.stats().overflows += 1;
            crate::redis::log::warning(&format!("overflow {}", reg.id), || {
                format!(
                    "registration {}: MaxPendingEvents ({max}) async events wait already: \
                     an event ran at once, as a sync one would",
                    reg.id
                )
            });
            true
        } else {
            false
        }
    };
    if inline {
        nested::before_inline_run();
        run_plan_here(exec.clone(), reg.plan.clone(), reader, then);
        return exec;
    }
    let pending = Pending {
        exec: exec.clone(),
        reader,
        then,
    };
    let drains = config::get(Key::ExecutionThreads).max(1) as usize;
    if reg.backlog.push(pending, drains, backlog::PATIENCE) {
        let reg = reg.clone();
        globals().pool.submit(move || drain(reg));
    }
    exec
}

/// One warning in the log per registration and interval for failed executions
/// (`redis::log`): an operator sees that it fails and why, never a flood.
fn log_failure(reg: &Registration, error: &str) {
    /// Characters of the error shown.
    const LONGEST: usize = 300;
    crate::redis::log::warning(&format!("failed {}", reg.id), || {
        let shown: String = error.chars().take(LONGEST).collect();
        let more = if shown.len() < error.len() { "..." } else { "" };
        format!(
            "registration {} ({}) failed: {shown}{more}",
            reg.id,
            reg.trigger.reader()
        )
    });
}

/// Runs a registration's waiting async events on this pool worker, oldest first, a few
/// at a time (`launch::run_events`: one entry into the runtime for them when it can),
/// with the Redis lock kept between them (`lock::keep_slice`; it still goes back
/// whenever its slice is over). After BatchSize events the drain queues itself again
/// behind the pool's other jobs, so one busy registration does not hold a worker for
/// ever. A drain ends early when another runs and is not stuck in a slow event
/// (`engine::backlog`: when more drains run at once).
fn drain(reg: Arc<Registration>) {
    /// Events taken at a time: a few, so that a second drain finds some.
    const CHUNK: usize = 16;
    let max = config::get(Key::BatchSize).max(1) as usize;
    let mut done = 0;
    {
        let _kept = lock::keep_slice();
        while done < max {
            let Some(chunk) = reg.backlog.take(CHUNK) else {
                return;
            };
            PENDING.fetch_sub(chunk.len(), Ordering::AcqRel);
            done += chunk.len();
            run_events(&reg.plan, chunk, &reg.backlog);
            if reg.backlog.retire_extra(backlog::PATIENCE) {
                return;
            }
        }
    }
    globals().pool.submit(move || drain(reg));
}
