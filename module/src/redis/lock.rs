//! The Redis lock as seen from worker threads, held in time slices.
//!
//! Taking the Redis lock per `execute()` call is slow; holding it for a whole job freezes
//! the server. A worker keeps the lock across consecutive calls and gives it back when
//! its slice (LockSliceMicros) is over or its batch ends. The main thread always holds
//! the lock while it runs module code, so it never takes it.

use std::cell::RefCell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use redis_module::{raw, Context};

static MAIN_THREAD: OnceLock<ThreadId> = OnceLock::new();
/// A detached context the main thread uses for calls that have no command context.
static MAIN_CTX: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(ptr::null_mut());
static SLICE_MICROS: AtomicU64 = AtomicU64::new(1000);

struct WorkerLock {
    ctx: *mut raw::RedisModuleCtx,
    held: bool,
    since: Instant,
    atomic_depth: u32,
    /// When the lock was last given back, and how long it had been held then.
    released: Option<(Instant, Duration)>,
}

/// How long a worker stays away after giving the lock back before it takes it again:
/// as long as it held it, up to this. The Redis lock is a plain mutex: without a pause a
/// worker that unlocks and locks again wins before the woken main thread runs, and other
/// clients starve (stalls of 60-160 ms were measured); the pause keeps the worker's
/// share of the lock at most about half while costing short holds next to nothing.
const HANDOFF: Duration = Duration::from_micros(30);

thread_local! {
    static WORKER: RefCell<Option<WorkerLock>> = const { RefCell::new(None) };
    /// Redis calls in progress on this thread: module code running inside one (a
    /// keyspace notification of a command a worker called) must never give the lock
    /// back, or the main thread would run in the middle of that command.
    static CALL_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

pub fn in_call() -> bool {
    CALL_DEPTH.with(|d| d.get() > 0)
}

/// Runs `f` (a Redis call) marked as in progress on this thread.
pub fn calling<R>(f: impl FnOnce() -> R) -> R {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            CALL_DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
    CALL_DEPTH.with(|d| d.set(d.get() + 1));
    let _depth = Depth;
    f()
}

/// Called once at module load, on the main thread.
pub fn init_main_thread(ctx: &Context) {
    let _ = MAIN_THREAD.set(std::thread::current().id());
    // SAFETY: `ctx` is the load context, used on the main thread during OnLoad (the
    // `Context` convention, redis/mod.rs). The detached context made here is never freed,
    // so MAIN_CTX never dangles, and `context()` hands it out on the main thread only.
    let detached = unsafe { raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx.ctx) };
    MAIN_CTX.store(detached, Ordering::Release);
}

pub fn set_slice_micros(micros: u64) {
    SLICE_MICROS.store(micros, Ordering::Relaxed);
}

thread_local! {
    /// Whether this thread is the main thread, once known (asked several times per Redis
    /// call; `thread::current()` costs an Arc clone each time).
    static IS_MAIN: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

pub fn on_main_thread() -> bool {
    IS_MAIN.with(|known| {
        if let Some(main) = known.get() {
            return main;
        }
        // Before load no thread is the main one yet: not remembered.
        let Some(main_id) = MAIN_THREAD.get() else {
            return false;
        };
        let main = *main_id == std::thread::current().id();
        known.set(Some(main));
        main
    })
}

fn with_worker<R>(f: impl FnOnce(&mut WorkerLock) -> R) -> R {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.get_or_insert_with(|| WorkerLock {
            // SAFETY: with no blocked client, GetThreadSafeContext makes a detached context
            // on a client of its own, and Redis allows it from any thread without the lock.
            // The pointer stays in this thread's WorkerLock and is never freed, so it is
            // live for every later use by this thread (and `Context` cannot leave it).
            ctx: unsafe { raw::RedisModule_GetThreadSafeContext.unwrap()(ptr::null_mut()) },
            held: false,
            since: Instant::now(),
            atomic_depth: 0,
            released: None,
        });
        f(w)
    })
}

fn lock_now(w: &mut WorkerLock) {
    if let Some((released, held)) = w.released.take() {
        let pause = held.min(HANDOFF);
        let away = released.elapsed();
        if away < pause {
            // Short pauses spin: a sleep costs more than it waits.
            if pause - away < Duration::from_micros(10) {
                while released.elapsed() < pause {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::sleep(pause - away);
            }
        }
    }
    // SAFETY: `w.ctx` is this thread's own thread-safe context (see `with_worker`), live
    // for the thread's life. Callers lock only while `held` is false and never on the main
    // thread (which holds the lock whenever module code runs there), so this thread does
    // not own the non-recursive lock already.
    unsafe { raw::RedisModule_ThreadSafeContextLock.unwrap()(w.ctx) };
    // Writes paused (CLIENT PAUSE, or a master handing over to its replica in a cluster
    // failover): Redis asserts, and crashes, when a module thread's write is propagated
    // meanwhile. The thread waits, lock given back, as a paused client would; a pause
    // cannot start while it holds the lock, so one check per taking suffices.
    // SAFETY: the lock is held (just taken above, or again below); AvoidReplicaTraffic
    // reads the pause state (and ends a pause whose time is up), which the lock guards.
    while unsafe { raw::RedisModule_AvoidReplicaTraffic.unwrap()() } != 0 {
        // SAFETY: as in `unlock_now`: the lock released is the one just taken here.
        unsafe { raw::RedisModule_ThreadSafeContextUnlock.unwrap()(w.ctx) };
        std::thread::sleep(PAUSE_POLL);
        // SAFETY: as above: this thread does not hold the lock now.
        unsafe { raw::RedisModule_ThreadSafeContextLock.unwrap()(w.ctx) };
    }
    w.held = true;
    w.since = Instant::now();
}

/// How often a worker looks again whether Redis's writes are still paused.
const PAUSE_POLL: Duration = Duration::from_millis(1);

fn unlock_now(w: &mut WorkerLock) {
    // SAFETY: every caller checks `held`, which is true only between this thread's
    // `lock_now` on the same context and here, so the lock released is ours. None unlocks
    // inside a Redis call (`in_call`), where the command running needs the lock kept.
    unsafe { raw::RedisModule_ThreadSafeContextUnlock.unwrap()(w.ctx) };
    w.held = false;
    w.released = Some((Instant::now(), w.since.elapsed()));
}

fn slice_over(w: &WorkerLock) -> bool {
    w.atomic_depth == 0
        && w.since.elapsed().as_micros() as u64 >= SLICE_MICROS.load(Ordering::Relaxed)
}

/// True when `ensure_locked` may wait for the lock (callers holding another global lock,
/// such as Python's GIL, must release it around `ensure_locked`).
pub fn needs_wait() -> bool {
    !on_main_thread() && !in_call() && with_worker(|w| !w.held || slice_over(w))
}

/// Makes sure this thread may touch Redis: on a worker, takes the lock or, when its
/// slice is over, gives it back to let the main thread in and takes it again.
pub fn ensure_locked() {
    if on_main_thread() || in_call() {
        return;
    }
    with_worker(|w| {
        if w.held && slice_over(w) {
            unlock_now(w);
        }
        if !w.held {
            lock_now(w);
        }
    })
}

/// Gives the lock back (not inside an atomic block): the thread is about to wait or
/// compute without Redis (a sleep, a future), or its work is done.
pub fn release_slice() {
    release_if(|_| true)
}

/// Gives the lock back at the end of a run's batch, as `release_slice`; while a
/// `KeepSlice` lives, only when the slice is over.
pub fn end_batch() {
    let kept = KEPT.with(|k| k.get() > 0);
    release_if(|w| !kept || slice_over(w))
}

fn release_if(when: impl FnOnce(&WorkerLock) -> bool) {
    if on_main_thread() || in_call() {
        return;
    }
    with_worker(|w| {
        if w.held && w.atomic_depth == 0 && when(w) {
            unlock_now(w);
        }
    })
}

thread_local! {
    /// Live `KeepSlice`s on this thread.
    static KEPT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// While it lives, the ends of batches on this worker (`end_batch`) keep the lock until
/// the slice is over: runs that follow one another (a registration's backlog of events)
/// share one taking of the lock instead of a hand-off each. Dropped, it gives the lock
/// back.
pub struct KeepSlice(());

pub fn keep_slice() -> KeepSlice {
    KEPT.with(|k| k.set(k.get() + 1));
    KeepSlice(())
}

impl Drop for KeepSlice {
    fn drop(&mut self) {
        KEPT.with(|k| k.set(k.get() - 1));
        release_slice();
    }
}

/// Gives the lock back when the slice is over, for code that computes a long time
/// without calling Redis (a guest's epoch check): other clients are served meanwhile.
pub fn yield_if_slice_over() {
    if on_main_thread() || in_call() {
        return;
    }
    with_worker(|w| {
        if w.held && slice_over(w) {
            unlock_now(w);
        }
    })
}

/// A context to call Redis with: this worker's (locking it if needed) or the main one,
/// on the database of this thread's current scope (`use_db`).
pub fn context() -> Context {
    let ctx = if on_main_thread() {
        MAIN_CTX.load(Ordering::Acquire)
    } else {
        with_worker(|w| {
            if !w.held {
                lock_now(w);
            }
            w.ctx
        })
    };
    select_current_db(ctx);
    Context::new(ctx)
}

thread_local! {
    /// The database the calls of this thread act on (see `use_db`).
    static DB: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Until it drops, calls on this thread act on its database; then the previous one.
pub struct DbScope {
    previous: i32,
}

impl Drop for DbScope {
    fn drop(&mut self) {
        DB.with(|d| d.set(self.previous));
    }
}

/// Makes `db` the database of this thread's calls (a run: its client's or its event's).
pub fn use_db(db: i32) -> DbScope {
    DbScope {
        previous: DB.with(|d| d.replace(db)),
    }
}

/// The database this thread's calls act on.
pub fn current_db() -> i32 {
    DB.with(|d| d.get())
}

fn select_current_db(ctx: *mut raw::RedisModuleCtx) {
    let db = current_db();
    // SAFETY: `ctx` comes from `context()`: the main thread's detached context, used on
    // the main thread, or this worker's own context just locked; either way this thread
    // holds the Redis lock. Selecting only changes the db of that context's own client; a
    // db out of range is refused by Redis and leaves the selection as it was.
    unsafe {
        if raw::RedisModule_GetSelectedDb.unwrap()(ctx) != db {
            raw::RedisModule_SelectDb.unwrap()(ctx, db);
        }
    }
}

/// The database a command's client has selected.
pub fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: the `Context` convention (redis/mod.rs): `ctx` is the context of the command
    // or notification being run, by the thread holding the Redis lock. GetSelectedDb only
    // reads the id of the db its client has selected.
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) }
}

/// Whether this worker is inside an atomic block.
pub fn in_atomic() -> bool {
    !on_main_thread() && with_worker(|w| w.atomic_depth > 0)
}

/// Enters an atomic block: the lock is held until the matching `atomic_exit`.
pub fn atomic_enter() {
    if on_main_thread() {
        return;
    }
    ensure_locked();
    with_worker(|w| w.atomic_depth += 1);
}

pub fn atomic_exit() {
    if on_main_thread() {
        return;
    }
    with_worker(|w| {
        if w.atomic_depth > 0 {
            w.atomic_depth -= 1;
            if w.atomic_depth == 0 && w.held && !in_call() {
                unlock_now(w);
            }
        }
    })
}

/// Ends an atomic block that user code left open (it returned or failed inside it).
pub fn atomic_reset() {
    if on_main_thread() {
        return;
    }
    with_worker(|w| {
        if w.atomic_depth > 0 {
            w.atomic_depth = 0;
            if w.held && !in_call() {
                unlock_now(w);
            }
        }
    })
}

thread_local! {
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as a pool worker: it keeps its lock slice until its batch
/// ends. Other threads (threads a recipe starts) give the lock back per call.
pub fn mark_worker() {
    IS_WORKER.with(|w| w.set(true));
    // Sleeps of HANDOFF length would otherwise be stretched by the default 50 us slack.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer and only changes the calling
    // thread's timer slack; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
}

/// After a Redis call: threads that are not workers do not keep the lock.
pub fn after_call() {
    if !on_main_thread() && !IS_WORKER.with(|w| w.get()) {
        release_slice();
    }
}
