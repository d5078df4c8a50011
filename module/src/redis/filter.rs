//! The raw command filter: rewrites an intercepted `CMD args...` into
//! `RG.INNERHOOK CMD args...`, a module command that can block its own client (a keyspace
//! notification cannot, PITFALLS.md).
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
    // SAFETY: the API table is filled in before a module's init runs and is only read;
    // this is called once at load on the main thread with the module's context.
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
/// Called from inside a command filter, where the string is handed to Redis at once.
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

unsafe extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let _ = std::panic::catch_unwind(|| {
        // Commands the module calls itself (call_next, execute()) reach the real command:
        // NOSELF alone misses calls from worker threads.
        if super::lock::in_call() {
            return;
        }
        // SAFETY: the filter context is valid during this call; strings are only read,
        // and the ones inserted are handed over to Redis.
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
