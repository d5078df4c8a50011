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
        Ok(BlockedClient(bc))
    }

    /// Blocks the client of the current command with callbacks Redis runs on the main
    /// thread once it is unblocked (`reply`, while the client is connected) and when its
    /// private data is released (`free`, always).
    ///
    /// Note for callers: Redis hands `reply` and `free` the private data given to
    /// `unblock_with` as an untyped pointer, so the callbacks must expect exactly the type
    /// the code unblocking this client passes (`offload`'s expect `Pending`). Nothing here
    /// checks it: this function should be `unsafe`, or the handle typed by its data.
    pub fn block_with(
        ctx: &Context,
        reply: raw::RedisModuleCmdFunc,
        free: Option<unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut c_void)>,
    ) -> BlockedClient {
        // SAFETY: as in `block`: `ctx` is the running command's context (the only caller,
        // `offload`, is called from RG.WASMUPLOAD's handler, which runs inline where the
        // client may not block). The callbacks are called by Redis with the private data
        // `unblock_with` passes; they must expect exactly that type (see the note above).
        let bc = unsafe { raw::RedisModule_BlockClient.unwrap()(ctx.ctx, reply, None, free, 0) };
        BlockedClient(bc)
    }

    /// Unblocks the client without an answer, handing `privdata` to the callbacks of
    /// `block_with` (they answer it; its `free` callback owns the box then).
    pub fn unblock_with<T: Send>(self, privdata: Box<T>) {
        let bc = self.0;
        std::mem::forget(self);
        // SAFETY: `bc` is live: the guard owned it and is consumed without its Drop, so
        // the handle is unblocked exactly once; UnblockClient may be called from any
        // thread. Redis keeps the leaked box, untouched, until it hands it to the
        // callbacks of `block_with`, whose `free` owns it then (see the note there).
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
    // SAFETY: `bc` is a live handle answered exactly once: `reply` and `unblock_with`
    // consume the guard without its Drop, and Drop runs only when neither did. Getting
    // the blocked client's thread-safe context, replying on it (Redis buffers the reply
    // until the unblock), freeing it and unblocking are allowed from any thread without
    // the lock; the context is not used after it is freed.
    unsafe {
        let ctx = raw::RedisModule_GetThreadSafeContext.unwrap()(bc);
        super::reply::reply(&Context::new(ctx), value);
        raw::RedisModule_FreeThreadSafeContext.unwrap()(ctx);
        raw::RedisModule_UnblockClient.unwrap()(bc, ptr::null_mut());
    }
}
