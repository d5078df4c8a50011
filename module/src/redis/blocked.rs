//! Clients blocked until an execution finishes, answered from any thread.
//!
//! Not every caller can be blocked: a command inside MULTI or a script, or called by a
//! module (a recipe's execute(), another module's RedisModule_Call). Blocking those
//! asserts inside Redis and aborts the server, so `block` refuses them with an error.

use std::ptr;

use redis_module::{raw, Context, ContextFlags};

use crate::engine::value::Value;

/// Whether the client of this command may be blocked.
pub fn can_block(ctx: &Context) -> bool {
    !ctx.get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
}

/// The error for a command that would have to block a client that cannot be blocked.
pub fn cannot_block(command: &str) -> String {
    format!(
        "ERR {command} would block its client, which is not possible here (inside MULTI, \
         a script, or a call from a module or a recipe)"
    )
}

/// A blocked client; a guard: dropped without an answer (a bug, a panic on the way) it
/// answers with an error, so a client is never left blocked for good.
pub struct BlockedClient(*mut raw::RedisModuleBlockedClient);

// SAFETY: after blocking, the handle is only used by `unblock_with`, `reply` and Drop,
// through GetThreadSafeContext(bc), replies on that context, FreeThreadSafeContext and
// UnblockClient: calls Redis documents as allowed from any thread without the lock. The
// guard is neither Clone nor Sync, so one thread at a time has it, and it is consumed by
// the one unblocking.
unsafe impl Send for BlockedClient {}

impl BlockedClient {
    /// Blocks the client of the current command (no timeout), if it can be blocked.
    pub fn block(ctx: &Context, command: &str) -> Result<BlockedClient, String> {
        if !can_block(ctx) {
            return Err(cannot_block(command));
        }
        // SAFETY: `ctx` is the context of the command being run, by the thread holding
        // the Redis lock (the `Context` convention, redis/mod.rs; every caller is a
        // command handler), and its client may be blocked (checked above). No callbacks
        // and no private data; the guard returned unblocks the handle exactly once.
        let bc = unsafe { raw::RedisModule_BlockClient.unwrap()(ctx.ctx, None, None, None, 0) };
        // The time until the answer counts as the command's, in SLOWLOG and the command
        // statistics (as 1.2's blocked commands did).
        // SAFETY: `bc` was just returned by BlockClient and is not answered yet; the call
        // only stores a start time in it. Optional API (Redis 6.2+), hence matched.
        unsafe {
            if let Some(start) = raw::RedisModule_BlockedClientMeasureTimeStart {
                start(bc);
            }
        }
        Ok(BlockedClient(bc))
    }

    /// Answers the client with `value` and unblocks it.
    pub fn reply(self, value: &Value) {
        let bc = self.0;
        std::mem::forget(self);
        answer(bc, value);
    }
}

impl Drop for BlockedClient {
    fn drop(&mut self) {
        answer(
            self.0,
            &Value::Error("ERR the command ended without an answer (a bug was caught)".into()),
        );
    }
}

fn answer(bc: *mut raw::RedisModuleBlockedClient, value: &Value) {
    // SAFETY: `bc` is a live handle answered exactly once: `reply` and `unblock_with`
    // consume the guard without its Drop, and Drop runs only when neither did. Getting
    // the blocked client's thread-safe context, replying on it (Redis buffers the reply
    // until the unblock), freeing it and unblocking are allowed from any thread without
    // the lock; the context is not used after it is freed.
    unsafe {
        // Ends the measure `block` started (it only adds the elapsed time to `bc`).
        if let Some(end) = raw::RedisModule_BlockedClientMeasureTimeEnd {
            end(bc);
        }
        let ctx = raw::RedisModule_GetThreadSafeContext.unwrap()(bc);
        super::reply::reply(&Context::new(ctx), value);
        raw::RedisModule_FreeThreadSafeContext.unwrap()(ctx);
        raw::RedisModule_UnblockClient.unwrap()(bc, ptr::null_mut());
    }
}
