//! Clients blocked until an execution finishes, answered from any thread.
//!
//! Not every caller can be blocked: a command inside MULTI or a script, or called by a
//! module (a recipe's execute(), another module's RedisModule_Call). Blocking those
//! asserts inside Redis and aborts the server, so `block` refuses them with an error.

use std::ffi::c_void;
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

    /// Blocks the client of the current command with callbacks Redis runs on the main
    /// thread once it is unblocked (`reply`, while the client is connected) and when its
    /// private data is released (`free`, always).
    pub fn block_with(
        ctx: &Context,
        reply: raw::RedisModuleCmdFunc,
        free: Option<unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut c_void)>,
    ) -> BlockedClient {
        // SAFETY: called from a command handler on the main thread with its context.
        let bc = unsafe { raw::RedisModule_BlockClient.unwrap()(ctx.ctx, reply, None, free, 0) };
        BlockedClient(bc)
    }

    /// Unblocks the client without an answer, handing `privdata` to the callbacks of
    /// `block_with` (they answer it; its `free` callback owns the box then).
    pub fn unblock_with<T: Send>(self, privdata: Box<T>) {
        let bc = self.0;
        std::mem::forget(self);
        // SAFETY: the handle is unblocked exactly once (self is consumed without Drop);
        // Redis keeps the leaked box until it hands it to the `free` callback.
        unsafe { raw::RedisModule_UnblockClient.unwrap()(bc, Box::into_raw(privdata).cast()) };
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
    // SAFETY: each handle is answered exactly once (`reply` consumes the guard without
    // running Drop; Drop runs only when `reply` did not); replies through the blocked
    // client's own thread-safe context are buffered until unblocking.
    unsafe {
        let ctx = raw::RedisModule_GetThreadSafeContext.unwrap()(bc);
        super::reply::reply(&Context::new(ctx), value);
        raw::RedisModule_FreeThreadSafeContext.unwrap()(ctx);
        raw::RedisModule_UnblockClient.unwrap()(bc, ptr::null_mut());
    }
}
