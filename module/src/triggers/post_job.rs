//! Sync registrations run in a post-notification job instead of inside the keyspace
//! notification callback, where the server offers RedisModule_AddPostNotificationJob.
//!
//! Why: Redis 7.2+ and Valkey 8 discourage writes inside a notification callback (the
//! command that raised the event is half done, other modules' callbacks for the same event
//! have not run yet, and Redis does not call a subscriber about its own nested events:
//! `nested.rs` works around that with a second subscriber). A post-notification job runs
//! right after the notifications, still inside the same execution unit: no other client
//! runs in between, its writes are propagated with the command (replicas and the AOF get
//! them together, wrapped in MULTI/EXEC), and the events its writes raise reach the
//! module's subscriber as any command's do (the subscriber is not active then), which adds
//! jobs of their own; Redis runs jobs until none remain.
//!
//! What stays the same: the callback still decides, with the state at the event, which
//! registrations take the event (paused, prefix, event and key types, the event's chain:
//! `event_chain.rs`), and reads the record's value and type then, so a trigger sees the
//! value its event wrote. Async registrations are still only queued by the callback, and
//! registrations with `commands=` still run in it (their command's client waits for them
//! and they may override its reply: both belong to the intercepted command, which is over
//! by the time a job runs). A registration never fires on its own chain's events: a job
//! carries the chain of its event, and a run inside it extends that chain as a run inside
//! the callback does. Errors, statistics and RG.DUMPREGISTRATIONS count the same.
//!
//! What differs (observed on Redis 7.4.1 and Valkey 8.1, tests/test_post_notification_jobs.py):
//! - A job runs after all of its command's notifications: in `MSET a 1 b 2` both keys are
//!   written before the trigger on `a` runs (inside the callback it ran between the two).
//! - Inside MULTI/EXEC or a Lua script the jobs run at the end of the execution unit: a sync
//!   trigger's writes come after all of the transaction's commands instead of right after
//!   the command that caused them (a later command of the transaction does not see them).
//! - Chains run breadth first: the events a job's run raises get jobs behind those already
//!   waiting (MSET's second key is handled before what the first key's trigger wrote).
//! - The steps' own reads (`execute()`) see the keyspace as it is when the job runs.
//! - An async event that overflows MaxPendingEvents still runs inline, in the callback.
//! - Events raised by an async run's writes on a pool worker still run their sync
//!   registrations inside the callback, as without jobs (`defers` says why); the worker's
//!   lock slice is one execution unit there, so they are still atomic and replicated with
//!   the async run's writes.
//!
//! Off (everything runs in the callback, as `nested.rs` describes) on servers without the
//! API (Redis 7.0) and when `GEARS_TEST_WITHOUT=post-notification-jobs` hides it
//! (`redis/capabilities.rs`). If the server refuses a job (it does while loading or on a
//! read-only replica, where no trigger fires anyway), its work runs at once, as without it.

use std::os::raw::{c_int, c_void};
use std::sync::Arc;

use redis_module::{raw, Context};

use super::event_chain::{self, Chain};
use crate::engine::plan::Mode;
use crate::engine::reader::Reader;
use crate::engine::registration::Registration;
use crate::launch::Movable;

/// What one registration does with an event, in the job.
pub enum Action {
    /// Starts an execution over this reader (its record read in the callback).
    Fire(Box<dyn Reader>),
    /// A stream message: counted, and its batch started when `start`.
    Message { start: bool },
}

/// One registration's part of an event, left to the job.
pub struct Deferred {
    pub reg: Arc<Registration>,
    pub action: Action,
}

/// Whether sync registrations run in post-notification jobs on this server.
pub fn enabled() -> bool {
    crate::redis::capabilities::get().post_notification_jobs
}

/// Whether `reg` runs an event in a job: a sync registration, on a server with jobs, for
/// an event raised on the main thread. (The caller keeps `commands=` registrations in the
/// callback.) On a pool worker the Redis lock is the execution unit: Redis 7.4 runs the
/// jobs in RedisModule_ThreadSafeContextUnlock, wherever the worker's lock slice happens
/// to end (inside a step, with the GIL held: a sync Python run there aborted the server).
pub fn defers(reg: &Registration) -> bool {
    reg.plan.mode == Mode::Sync && enabled() && crate::redis::lock::on_main_thread()
}

/// The part of one event the job runs.
pub struct Job {
    pub key: Vec<u8>,
    pub db: i32,
    /// The registrations whose runs raised the event.
    pub chain: Chain,
    /// Whether a run may finish on the pool (`launch::Movable`), as decided in the
    /// callback (inside MULTI or a script it may not).
    pub movable: bool,
    pub work: Vec<Deferred>,
}

impl Job {
    /// Runs the deferred work in the event's database and chain.
    fn run(self) {
        let _db = super::event_db(self.db);
        let _chain = event_chain::scope(self.chain);
        let _movable = Movable::allow(self.movable);
        for Deferred { reg, action } in self.work {
            let _firing = event_chain::firing(&reg);
            match action {
                Action::Fire(reader) => {
                    super::fire(&reg, reader);
                }
                Action::Message { start } => super::stream::on_message(&reg, &self.key, start),
            }
        }
    }
}

/// Adds `job` to run after the notifications of the current execution unit (`ctx` is
/// the notification callback's context). When the server refuses it, it runs now.
pub fn add(ctx: &Context, job: Job) {
    if job.work.is_empty() {
        return;
    }
    // SAFETY: API pointers are filled in by Redis before OnLoad and never change; the
    // entry is copied out (None on a server without it).
    let Some(add_job) = (unsafe { raw::RedisModule_AddPostNotificationJob }) else {
        job.run();
        return;
    };
    let data = Box::into_raw(Box::new(Some(job)));
    // SAFETY: `ctx` is the live context of the notification being handled, on the thread
    // holding the Redis lock. `data` is a leaked box that Redis hands back to `run_job`
    // once and to `free_job` once (both functions of this module, never unloaded). The
    // job holds an `Rc` (its chain): Redis runs jobs at the end of the execution unit that
    // added them, under the same hold of the Redis lock, so no two threads ever touch it.
    let status = unsafe { add_job(ctx.ctx, Some(run_job), data.cast(), Some(free_job)) };
    if status != raw::REDISMODULE_OK as c_int {
        // SAFETY: refused: Redis kept no pointer to `data`, which is ours again.
        let job = unsafe { Box::from_raw(data) };
        if let Some(job) = *job {
            job.run();
        }
    }
}

/// Runs a job (Redis calls it once, after the notifications).
extern "C" fn run_job(_ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    let caught = std::panic::catch_unwind(|| {
        // SAFETY: `data` is the `Option<Job>` box `add` gave Redis; it stays valid until
        // `free_job`, which Redis calls after this returns. Only this thread touches it now.
        let slot = unsafe { &mut *(data as *mut Option<Job>) };
        if let Some(job) = slot.take() {
            job.run();
        }
    });
    if caught.is_err() {
        redis_module::logging::log_warning(
            "gears: a post-notification job panicked; the rest of its event was skipped",
        );
    }
}

/// Frees a job's data (Redis calls it once, after `run_job` or instead of it).
extern "C" fn free_job(data: *mut c_void) {
    // SAFETY: `data` is the box `add` leaked, handed back exactly once.
    let job = unsafe { Box::from_raw(data as *mut Option<Job>) };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(job))).is_err() {
        redis_module::logging::log_warning("gears: freeing a post-notification job panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_in_its_event_chain_and_gives_the_run_around_it_back() {
        let around = event_chain::scope(Chain::EMPTY);
        let _firing = event_chain::firing_id_for_tests(7);
        let job = Job {
            key: b"k".to_vec(),
            db: 3,
            chain: event_chain::chain_for_tests(&[5]),
            movable: true,
            work: Vec::new(),
        };
        job.run();
        assert_eq!(
            event_chain::of_event_now(),
            event_chain::chain_for_tests(&[7])
        );
        drop(_firing);
        drop(around);
    }
}
