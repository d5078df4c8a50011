//! Keyspace events raised inside the module's own notification callback: the writes of a
//! sync trigger, of a sync stream batch, of anything an event runs inline.
//!
//! Redis does not call a subscriber about events raised while its own callback runs:
//! Redis 7.0's moduleNotifyKeyspaceEvent (src/module.c) calls a subscriber only
//! `if ((sub->event_mask & type) && sub->active == 0)`, and sets `sub->active = 1` around
//! `sub->notify_callback(&ctx, type, event, key)`. Valkey 8 does the same unless a module
//! opts into nested notifications, which 7.0 cannot. But the flag is the subscriber's, and
//! every RM_SubscribeToKeyspaceEvents call adds a subscriber of its own (`sub->active = 0;
//! listAddNodeTail(moduleKeyspaceSubscribers, sub)`).
//!
//! So the module has two subscribers. The first dispatches the events that reach it. While
//! it runs, Redis calls the second about whatever nests inside (that one is not active); it
//! only queues the events a registration may take, and the first dispatches the queue
//! before it returns, until the queue is empty. Every event is dispatched once, in the order
//! its write happened, after the run that wrote it, and still inside the command that caused
//! it all (its writes reach the AOF and replicas with that command). The second subscriber
//! is added the first time something runs inline inside the first: where every trigger is
//! async, an event costs no extra call (and, as before, nothing nested is seen there: only
//! the dispatch's own reads could raise such an event, a key expiring as it is read).
//!
//! No chain recurses forever: a queued event carries its chain (`event_chain.rs`), the
//! registrations whose runs raised it, and does not fire them again. A stream registration
//! in the chain only counts the message: its timer starts the batch.
//!
//! Where the server has post-notification jobs (`post_job.rs`), the first callback runs no
//! sync registration itself: it hands them to a job, and a job's writes reach the first
//! subscriber directly (it is not active then), carrying the chain of the run that wrote
//! them. The second subscriber is then needed only for what still runs inline inside the
//! callback: `commands=` registrations, and async events past MaxPendingEvents.
//!
//! Nesting is synchronous, on the thread that runs the first callback: the state is that
//! thread's.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::{raw, Context, ContextFlags, NotifyEvent, RedisString};

use super::event_chain::{self, Chain};
use super::post_job;
use crate::launch::Movable;
use crate::redis::blocked::can_block;
use crate::redis::lock;

/// An event raised inside the first subscriber's callback, waiting for it.
struct Nested {
    event: String,
    key: Vec<u8>,
    db: i32,
    chain: Chain,
}

struct State {
    /// The first subscriber's callback runs on this thread.
    dispatching: Cell<bool>,
    /// That callback's context (valid while it runs).
    ctx: Cell<*mut raw::RedisModuleCtx>,
    queue: RefCell<VecDeque<Nested>>,
}

thread_local! {
    static STATE: State = const {
        State {
            dispatching: Cell::new(false),
            ctx: Cell::new(ptr::null_mut()),
            queue: RefCell::new(VecDeque::new()),
        }
    };
}

/// The second subscriber was added (or adding it failed: it is tried once).
static SECOND: AtomicBool = AtomicBool::new(false);

/// The events registrations can fire on.
fn events() -> NotifyEvent {
    NotifyEvent::GENERIC
        | NotifyEvent::STRING
        | NotifyEvent::LIST
        | NotifyEvent::SET
        | NotifyEvent::HASH
        | NotifyEvent::ZSET
        | NotifyEvent::EXPIRED
        | NotifyEvent::EVICTED
        | NotifyEvent::STREAM
        | NotifyEvent::MODULE
        | NotifyEvent::MISSED
}

type Handler = unsafe extern "C" fn(
    *mut raw::RedisModuleCtx,
    c_int,
    *const c_char,
    *mut raw::RedisModuleString,
) -> c_int;

fn add_subscriber(ctx: *mut raw::RedisModuleCtx, handler: Handler) -> Result<(), String> {
    // SAFETY: API pointers are filled in by Redis before the module's OnLoad and never
    // change; they are copied out, not referenced.
    let (all, subscribe) = unsafe {
        (
            raw::RedisModule_GetKeyspaceNotificationFlagsAll,
            raw::RedisModule_SubscribeToKeyspaceEvents,
        )
    };
    let subscribe = subscribe.ok_or("this server cannot subscribe to keyspace events")?;
    let mut mask = events();
    if let Some(all) = all {
        // SAFETY: a plain getter of the flags this server knows.
        mask &= NotifyEvent::from_bits_truncate(unsafe { all() });
    }
    // SAFETY: `ctx` is a live context of this module on a thread holding the Redis lock;
    // Redis keeps only its module. The handler is a function of this module, which is
    // never unloaded.
    let status = unsafe { subscribe(ctx, mask.bits(), Some(handler)) };
    if status != raw::REDISMODULE_OK as c_int {
        return Err("subscribing to keyspace events failed".into());
    }
    Ok(())
}

/// Subscribes the first subscriber (at load, main thread).
pub fn subscribe(ctx: &Context) -> Result<(), String> {
    add_subscriber(ctx.ctx, on_event)
}

/// Before something runs inline: if that is inside the first callback, its writes must
/// reach the second subscriber, which is added now if it is not there yet. (Redis appends
/// it to its list: an iteration over the list in progress does not reach it, or reaches
/// it after the first callback returned, when it ignores the event.)
pub fn before_inline_run() {
    if SECOND.load(Ordering::Relaxed) {
        return;
    }
    let ctx = STATE.with(|s| s.dispatching.get().then(|| s.ctx.get()));
    let Some(ctx) = ctx.filter(|c| !c.is_null()) else {
        return;
    };
    if SECOND.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Err(e) = add_subscriber(ctx, on_nested_event) {
        redis_module::logging::log_warning(format!(
            "gears: {e}: the writes of sync executions will not trigger registrations"
        ));
    }
}

/// The first callback is running while it lives; at the end nothing of it is left, and
/// the chain is what it was before (a run in a post-notification job goes on after the
/// callback its write raised: `post_job.rs`).
struct Callback {
    _chain: event_chain::Saved,
}

impl Callback {
    /// Enters the callback of an event raised in `chain`.
    fn enter(ctx: *mut raw::RedisModuleCtx, chain: Chain) -> Callback {
        let saved = event_chain::scope(chain);
        STATE.with(|s| {
            s.dispatching.set(true);
            s.ctx.set(ctx);
        });
        Callback { _chain: saved }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        STATE.with(|s| {
            s.dispatching.set(false);
            s.ctx.set(ptr::null_mut());
            s.queue.borrow_mut().clear();
        });
    }
}

fn event_name<'a>(event: *const c_char) -> Option<&'a str> {
    if event.is_null() {
        return None;
    }
    // SAFETY: Redis passes a NUL-terminated event name that lives during the callback.
    unsafe { CStr::from_ptr(event) }.to_str().ok()
}

/// The first subscriber: dispatches the event, then what nested inside. (Redis passes a
/// valid context, event name and key for the duration of the call.)
extern "C" fn on_event(
    ctx: *mut raw::RedisModuleCtx,
    _kind: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    let caught = std::panic::catch_unwind(|| {
        let context = Context::new(ctx);
        let flags = context.get_flags();
        if flags.contains(ContextFlags::LOADING) || !flags.contains(ContextFlags::MASTER) {
            return;
        }
        let Some(event) = event_name(event) else {
            return;
        };
        let key = RedisString::string_as_slice(key);
        // Outside any run this is empty. Inside a post-notification job's run (the only
        // way a run reaches this subscriber) it is that run's chain: the event is nested.
        let chain = event_chain::of_event_now();
        let nested = !chain.is_empty();
        let _callback = Callback::enter(ctx, chain);
        // A sync run may finish on the pool when a step returns a future (as in 1.2),
        // except inside MULTI or a script, which must have it whole now.
        let movable = can_block(&context);
        let _movable = Movable::allow(movable);
        handle(
            ctx,
            event,
            key,
            lock::selected_db(&context),
            nested,
            movable,
        );
        while let Some(nested) = STATE.with(|s| s.queue.borrow_mut().pop_front()) {
            event_chain::enter(nested.chain);
            handle(ctx, &nested.event, &nested.key, nested.db, true, movable);
        }
    });
    if caught.is_err() {
        redis_module::logging::log_warning(
            "gears: a keyspace event handler panicked; the event was skipped",
        );
    }
    raw::REDISMODULE_OK as c_int
}

/// Dispatches one event in the callback; what sync registrations do with it goes to a
/// post-notification job where the server has them (`post_job.rs`).
fn handle(
    ctx: *mut raw::RedisModuleCtx,
    event: &str,
    key: &[u8],
    db: i32,
    nested: bool,
    movable: bool,
) {
    let chain = event_chain::of_event_now();
    let work = super::keys::dispatch(event, key, db, nested);
    let job = post_job::Job {
        key: key.to_vec(),
        db,
        chain,
        // An event raised inside another execution (a sync run's execute()) runs nested
        // in it without jobs, and never moves then: the same in the job that runs later.
        movable: movable && !crate::launch::in_execution(),
        work,
    };
    post_job::add(&Context::new(ctx), job);
}

/// The second subscriber: queues what nests inside the first callback.
extern "C" fn on_nested_event(
    ctx: *mut raw::RedisModuleCtx,
    _kind: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    // Most calls come after the first callback is over: nothing nests then.
    if !STATE.with(|s| s.dispatching.get()) {
        return raw::REDISMODULE_OK as c_int;
    }
    let caught = std::panic::catch_unwind(|| {
        let Some(event) = event_name(event) else {
            return;
        };
        let key = RedisString::string_as_slice(key);
        if !super::keys::wanted(event, key) {
            return;
        }
        let nested = Nested {
            event: event.to_string(),
            key: key.to_vec(),
            db: lock::selected_db(&Context::new(ctx)),
            chain: event_chain::of_event_now(),
        };
        STATE.with(|s| s.queue.borrow_mut().push_back(nested));
    });
    if caught.is_err() {
        redis_module::logging::log_warning(
            "gears: a keyspace event handler panicked; the event was skipped",
        );
    }
    raw::REDISMODULE_OK as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_leaves_nothing_behind() {
        {
            let _cb = Callback::enter(ptr::null_mut(), Chain::EMPTY);
            STATE.with(|s| {
                assert!(s.dispatching.get());
                s.queue.borrow_mut().push_back(Nested {
                    event: "set".into(),
                    key: b"k".to_vec(),
                    db: 0,
                    chain: Chain::EMPTY,
                });
            });
            event_chain::enter(Chain::EMPTY);
        }
        STATE.with(|s| {
            assert!(!s.dispatching.get());
            assert!(s.queue.borrow().is_empty());
        });
        assert_eq!(event_chain::of_event_now(), Chain::EMPTY);
    }
}
