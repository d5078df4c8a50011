//! Clients blocked until an execution finishes, answered from any thread.

use std::ptr;

use redis_module::{raw, Context};

use crate::engine::value::Value;

pub struct BlockedClient(*mut raw::RedisModuleBlockedClient);

// SAFETY: a blocked client handle may be used from any thread: Redis documents
// GetThreadSafeContext(bc)/UnblockClient as thread-safe.
unsafe impl Send for BlockedClient {}

impl BlockedClient {
    /// Blocks the client of the current command (no timeout).
    pub fn block(ctx: &Context) -> BlockedClient {
        // SAFETY: called from a command handler on the main thread with its context.
        let bc = unsafe { raw::RedisModule_BlockClient.unwrap()(ctx.ctx, None, None, None, 0) };
        BlockedClient(bc)
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
