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
//! No chain recurses forever: a queued event carries its chain, the registrations whose runs
//! raised it (the one that wrote it, the one whose event started that one, ...), and does
//! not fire them again, as Redis does not call a subscriber about its own writes. A stream
//! registration in the chain only counts the message: its timer starts the batch.
//!
//! Nesting is synchronous, on the thread that runs the first callback: the state is that
//! thread's.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis_module::{raw, Context, ContextFlags, NotifyEvent, RedisString};

use crate::engine::registration::Registration;
use crate::redis::lock;

/// Registrations whose runs raised an event, by address (identity only: a registration
/// dropped and another made at its address inside one callback would be taken for it).
#[derive(Clone, Debug, PartialEq)]
struct Chain(Option<Rc<[usize]>>);

impl Chain {
    const EMPTY: Chain = Chain(None);

    fn contains(&self, id: usize) -> bool {
        self.0.as_deref().is_some_and(|c| c.contains(&id))
    }

    /// This chain followed by `id` (a registration firing inside it).
    fn then(&self, id: usize) -> Chain {
        let mut ids = self.0.as_deref().unwrap_or(&[]).to_vec();
        ids.push(id);
        Chain(Some(ids.into()))
    }
}

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
    /// The chain of the event being dispatched.
    chain: RefCell<Chain>,
    /// The registration firing now (0: none).
    firing: Cell<usize>,
}

thread_local! {
    static STATE: State = const {
        State {
            dispatching: Cell::new(false),
            ctx: Cell::new(ptr::null_mut()),
            queue: RefCell::new(VecDeque::new()),
            chain: RefCell::new(Chain::EMPTY),
            firing: Cell::new(0),
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

/// The first callback is running while it lives; at the end nothing of it is left.
struct Callback;

impl Callback {
    fn enter(ctx: *mut raw::RedisModuleCtx) -> Callback {
        STATE.with(|s| {
            s.dispatching.set(true);
            s.ctx.set(ctx);
        });
        Callback
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        STATE.with(|s| {
            s.dispatching.set(false);
            s.ctx.set(ptr::null_mut());
            s.queue.borrow_mut().clear();
            *s.chain.borrow_mut() = Chain::EMPTY;
            s.firing.set(0);
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
        let _callback = Callback::enter(ctx);
        super::keys::dispatch(event, key, lock::selected_db(&context), false);
        while let Some(nested) = STATE.with(|s| s.queue.borrow_mut().pop_front()) {
            STATE.with(|s| *s.chain.borrow_mut() = nested.chain);
            super::keys::dispatch(&nested.event, &nested.key, nested.db, true);
        }
    });
    if caught.is_err() {
        redis_module::logging::log_warning(
            "gears: a keyspace event handler panicked; the event was skipped",
        );
    }
    raw::REDISMODULE_OK as c_int
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
            chain: STATE.with(|s| match s.firing.get() {
                0 => s.chain.borrow().clone(),
                id => s.chain.borrow().then(id),
            }),
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

fn id_of(reg: &Arc<Registration>) -> usize {
    Arc::as_ptr(reg) as usize
}

/// Whether the event being dispatched (or queued) was raised by the runs of `reg`: its
/// own writes, or those of what it started.
pub fn in_chain(reg: &Arc<Registration>) -> bool {
    chain_has(id_of(reg))
}

fn chain_has(id: usize) -> bool {
    STATE.with(|s| s.firing.get() == id || s.chain.borrow().contains(id))
}

/// Marks `reg` as firing while the guard lives: what its inline run writes is in its chain.
pub struct Firing(usize);

pub fn firing(reg: &Arc<Registration>) -> Firing {
    mark(id_of(reg))
}

fn mark(id: usize) -> Firing {
    Firing(STATE.with(|s| s.firing.replace(id)))
}

impl Drop for Firing {
    fn drop(&mut self) {
        STATE.with(|s| s.firing.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_grows_by_the_registration_that_fires_inside_it() {
        let top = Chain::EMPTY;
        assert!(!top.contains(7));
        let one = top.then(7);
        let two = one.then(9);
        assert!(one.contains(7) && !one.contains(9));
        assert!(two.contains(7) && two.contains(9));
        assert_eq!(two.0.as_deref(), Some(&[7, 9][..]));
        // The parent is untouched: sibling events keep their own chain.
        assert_eq!(one.0.as_deref(), Some(&[7][..]));
    }

    #[test]
    fn the_firing_registration_is_in_the_chain_while_it_fires() {
        STATE.with(|s| *s.chain.borrow_mut() = Chain::EMPTY.then(3));
        assert!(chain_has(3) && !chain_has(7) && !chain_has(9));
        {
            let _outer = mark(7);
            assert!(chain_has(3) && chain_has(7));
            {
                let _inner = mark(9);
                assert!(chain_has(9) && !chain_has(7));
            }
            assert!(chain_has(7));
        }
        assert!(!chain_has(7));
        STATE.with(|s| *s.chain.borrow_mut() = Chain::EMPTY);
    }

    #[test]
    fn a_callback_leaves_nothing_behind() {
        {
            let _cb = Callback::enter(ptr::null_mut());
            STATE.with(|s| {
                assert!(s.dispatching.get());
                s.queue.borrow_mut().push_back(Nested {
                    event: "set".into(),
                    key: b"k".to_vec(),
                    db: 0,
                    chain: Chain::EMPTY.then(3),
                });
                *s.chain.borrow_mut() = Chain::EMPTY.then(3);
                s.firing.set(5);
            });
        }
        STATE.with(|s| {
            assert!(!s.dispatching.get());
            assert!(s.queue.borrow().is_empty());
            assert_eq!(*s.chain.borrow(), Chain::EMPTY);
            assert_eq!(s.firing.get(), 0);
        });
    }
}
