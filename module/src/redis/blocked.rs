//! Clients blocked until an execution finishes, answered from any thread.
//!
//! Not every caller can be blocked: a command inside MULTI or a script, or called by a
//! module (a recipe's execute(), another module's RedisModule_Call). Blocking those
//! asserts inside Redis and aborts the server, so `block` refuses them with an error.

use std::ptr;

use redis_module::{raw, Context, ContextFlags};

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

use crate::engine::value::Value;

pub struct BlockedClient(*mut raw::RedisModuleBlockedClient);

// SAFETY: a blocked client handle may be used from any thread: Redis documents
// GetThreadSafeContext(bc)/UnblockClient as thread-safe.
unsafe impl Send for BlockedClient {}

impl BlockedClient {
    /// Blocks the client of the current command (no timeout), if it can be blocked.
    pub fn block(ctx: &Context, command: &str) -> Result<BlockedClient, String> {
        if !can_block(ctx) {
            return Err(cannot_block(command));
        }
        // SAFETY: called from a command handler on the main thread with its context, for
        // a client that may be blocked (checked above).
        let bc = unsafe { raw::RedisModule_BlockClient.unwrap()(ctx.ctx, None, None, None, 0) };
        Ok(BlockedClient(bc))
    }

    /// Answers the client with `value` and unblocks it.
    pub fn reply(self, value: &Value) {
        // SAFETY: the handle is unblocked exactly once (self is consumed); replies through
        // the blocked client's own thread-safe context are buffered until unblocking.
        unsafe {
            let ctx = raw::RedisModule_GetThreadSafeContext.unwrap()(self.0);
            super::reply::reply(&Context::new(ctx), value);
            raw::RedisModule_FreeThreadSafeContext.unwrap()(ctx);
            raw::RedisModule_UnblockClient.unwrap()(self.0, ptr::null_mut());
        }
    }
}
