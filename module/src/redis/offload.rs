//! A command's slow part off the main thread: the client waits blocked while a helper
//! thread does what touches no Redis (compiling a guest, running its describe); the rest
//! (installing, replicating, answering) runs back on the main thread when Redis unblocks
//! the client, exactly as a command handler would have run it. One helper thread serves
//! every such command in turn, so slow commands never multiply threads.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

use redis_module::{raw, Context};

use super::blocked::BlockedClient;
use super::lock;
use super::reply::reply;
use crate::engine::value::Value;

type Task = Box<dyn FnOnce() + Send>;
type Finish = Box<dyn FnOnce(&Context) -> Value + Send>;

static HELPER: OnceLock<Result<Mutex<Sender<Task>>, String>> = OnceLock::new();

fn helper() -> Result<&'static Mutex<Sender<Task>>, String> {
    HELPER
        .get_or_init(|| {
            let (tx, rx) = channel::<Task>();
            std::thread::Builder::new()
                .name("gears-offload".into())
                .spawn(move || {
                    be_nice();
                    // Each task catches its own panics: the thread outlives them.
                    for task in rx {
                        task();
                    }
                })
                .map(|_| Mutex::new(tx))
                .map_err(|e| format!("cannot start the helper thread: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Lowers the helper's CPU priority (and that of threads it starts, such as the
/// compiler's pool): on a small machine the main thread must win the CPU, or other
/// clients wait for the compile anyway (PINGs of 300 ms were measured without this).
fn be_nice() {
    // SAFETY: gettid takes no arguments; setpriority(PRIO_PROCESS, tid) on Linux changes
    // the nice value of that one thread, this one. Plain integers only, no memory passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

const BUG: &str = "ERR internal error (a bug was caught; Redis keeps running)";

/// What the helper hands back to the main thread: the rest of the command, run once.
struct Pending(Option<Finish>);

impl Pending {
    fn run(&mut self, ctx: &Context) -> Option<Value> {
        let finish = self.0.take()?;
        Some(
            catch_unwind(AssertUnwindSafe(|| finish(ctx)))
                .unwrap_or_else(|_| Value::Error(BUG.into())),
        )
    }
}

/// Blocks the client of `ctx` and runs `slow` on the helper thread (without the Redis
/// lock); then, on the main thread, `finish` with a context of the client's, whose value
/// answers the client. Should the client disconnect meanwhile, `finish` still runs (with
/// the module's own context): what it asked for happens. An error means nothing was
/// started and the client is not blocked.
pub fn offload<T: Send + 'static>(
    ctx: &Context,
    slow: impl FnOnce() -> T + Send + 'static,
    finish: impl FnOnce(&Context, T) -> Value + Send + 'static,
) -> Result<(), String> {
    let helper = helper()?;
    let client = BlockedClient::block_with(ctx, Some(on_reply), Some(on_free));
    let task: Task = Box::new(move || match catch_unwind(AssertUnwindSafe(slow)) {
        Ok(made) => {
            let finish: Finish = Box::new(move |ctx| finish(ctx, made));
            client.unblock_with(Box::new(Pending(Some(finish))));
        }
        // Answered here; the callbacks see no private data and do nothing.
        Err(_) => client.reply(&Value::Error(BUG.into())),
    });
    // A failed send hands the task back and drops it: the client's guard answers it.
    let _ = helper.lock().unwrap_or_else(|e| e.into_inner()).send(task);
    Ok(())
}

/// Redis unblocked a connected client (main thread): the rest of its command runs now.
///
/// # Safety
/// Only Redis may call it, as the reply callback of a client `offload` blocked: on the
/// main thread, with `ctx` that client's reply context, whose private data is null or the
/// `Box<Pending>` that `unblock_with` leaked (no other type is ever given to a client
/// blocked with these callbacks), still owned by Redis.
unsafe extern "C" fn on_reply(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    // SAFETY: `ctx` is the reply context of a client blocked with private data (the
    // function's contract); GetBlockedClientPrivateData only reads it back.
    let pending = unsafe { raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx) };
    if pending.is_null() {
        return raw::REDISMODULE_OK as c_int;
    }
    let context = Context::new(ctx);
    // SAFETY: non-null, so it is the leaked `Box<Pending>` (the function's contract): a
    // live, aligned `Pending`. Redis keeps it until `on_free`, which it calls after this
    // returns, on this same thread; nothing else holds a reference meanwhile.
    if let Some(answer) = unsafe { &mut *pending.cast::<Pending>() }.run(&context) {
        reply(&context, &answer);
    }
    raw::REDISMODULE_OK as c_int
}

/// Redis releases the private data (main thread), after `on_reply` or instead of it when
/// the client went away: the rest of the command runs if it has not yet.
///
/// # Safety
/// Only Redis may call it, as the free-privdata callback of a client `offload` blocked:
/// on the main thread, once per unblocking, with `pending` null or the `Box<Pending>` that
/// `unblock_with` leaked, which Redis forgets after this call.
unsafe extern "C" fn on_free(_ctx: *mut raw::RedisModuleCtx, pending: *mut c_void) {
    if pending.is_null() {
        return;
    }
    // SAFETY: non-null, so it is the `Box<Pending>` that `unblock_with` leaked with
    // `Box::into_raw` (the function's contract); Redis hands it over exactly once and no
    // reference from `on_reply` is left, so rebuilding the Box takes back sole ownership.
    let mut pending = unsafe { Box::from_raw(pending.cast::<Pending>()) };
    pending.run(&lock::context());
}
