//! The raw command filter: rewrites an intercepted `CMD args...` into
//! `RG.INNERHOOK CMD args...`, a module command that can block its own client (a keyspace
//! notification runs with a temporary context whose client cannot be blocked).
//!
//! It knows nothing of registrations: whether a command is intercepted is a predicate
//! given at load. It lets through untouched what must reach the real command: calls the
//! module makes itself (a hook's call_next, execute()), and anything while loading or on
//! a replica (replication and AOF traffic).

use std::os::raw::c_char;
use std::sync::OnceLock;

use redis_module::{raw, Context};

/// What an intercepted command is rewritten into.
const INNER: &[u8] = b"RG.INNERHOOK";

/// What the filter puts after an RG.INNERHOOK a client sent itself, so it is refused.
const FROM_CLIENT: &[u8] = b"\0sent-by-a-client";

/// Whether a command (its name, as sent) is to be intercepted.
pub type Intercepts = fn(&[u8]) -> bool;

static INTERCEPTS: OnceLock<Intercepts> = OnceLock::new();

/// Whether RG.INNERHOOK's first argument is the filter's mark: a client sent the command
/// itself (ours never passes through the filter marked).
pub fn sent_by_client(first_arg: &[u8]) -> bool {
    first_arg == FROM_CLIENT
}

/// Installs the command filter (at load, once), asking `intercepts` about each command.
pub fn install(ctx: &Context, intercepts: Intercepts) {
    if INTERCEPTS.set(intercepts).is_err() {
        return;
    }
    // SAFETY: `ctx` is the load context, used on the main thread during OnLoad (the
    // `Context` convention, redis/mod.rs). `filter` stays valid for the process: the
    // module cannot be unloaded (deinit refuses), and it is called only as its # Safety
    // asks.
    unsafe {
        let Some(register) = raw::RedisModule_RegisterCommandFilter else {
            ctx.log_warning("gears: this server has no command filters: hooks will not run");
            return;
        };
        register(
            ctx.ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as i32,
        );
    }
}

/// A new RedisModuleString holding `bytes`, owned by the filter context it is put in.
///
/// # Safety
/// Only inside a command filter, whose caller hands the string to Redis at once
/// (CommandFilterArgInsert takes ownership); nothing else may use or free it.
unsafe fn string(bytes: &[u8]) -> *mut raw::RedisModuleString {
    // SAFETY: a null context makes an unowned string; the caller passes it to
    // CommandFilterArgInsert, which takes ownership.
    unsafe {
        raw::RedisModule_CreateString.unwrap()(
            std::ptr::null_mut(),
            bytes.as_ptr() as *const c_char,
            bytes.len(),
        )
    }
}

/// The command filter: turns an intercepted command into RG.INNERHOOK.
///
/// # Safety
/// Only Redis may call it, as the command filter `install` registered: with `fctx` the
/// live filter context of the command about to run, by the thread that runs it, which
/// holds the Redis lock (the main thread, or a thread inside RedisModule_Call).
unsafe extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let _ = std::panic::catch_unwind(|| {
        // Commands the module calls itself (call_next, execute()) reach the real command:
        // NOSELF alone misses calls from worker threads.
        if super::lock::in_call() {
            return;
        }
        // SAFETY: `fctx` is live for this call, by a thread holding the Redis lock (the
        // function's contract). Argument 0 is checked non-null; its buffer is read while
        // the argument list is untouched (before any insert). GetContextFlags accepts a
        // NULL context (server flags only). The strings inserted are made without a
        // context (no automatic memory) and not freed or used here after the insert:
        // ArgInsert hands them to Redis, which may keep them past the filter.
        unsafe {
            let name = raw::RedisModule_CommandFilterArgGet.unwrap()(fctx, 0);
            if name.is_null() {
                return;
            }
            let mut len = 0usize;
            let ptr = raw::RedisModule_StringPtrLen.unwrap()(name, &mut len);
            let name = std::slice::from_raw_parts(ptr as *const u8, len);
            // ACL users may change (EXEC may hold an ACL command): permissions known so
            // far are asked again.
            if name.eq_ignore_ascii_case(b"acl") || name.eq_ignore_ascii_case(b"exec") {
                super::acl::users_may_have_changed();
            }
            let flags = raw::RedisModule_GetContextFlags.unwrap()(std::ptr::null_mut()) as u32;
            if flags & (raw::REDISMODULE_CTX_FLAGS_LOADING | raw::REDISMODULE_CTX_FLAGS_SLAVE) != 0
            {
                return;
            }
            if name.eq_ignore_ascii_case(INNER) {
                raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 1, string(FROM_CLIENT));
                return;
            }
            if INTERCEPTS.get().is_some_and(|intercepts| intercepts(name)) {
                raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 0, string(INNER));
            }
        }
    });
}
