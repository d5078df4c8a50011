//! Writing Values as RESP replies.

use std::os::raw::c_char;

use redis_module::{raw, Context};

use crate::engine::value::{format_float, Value};

fn legal_line(s: &str) -> std::ffi::CString {
    let clean: Vec<u8> = s
        .bytes()
        .map(|b| {
            if b == b'\r' || b == b'\n' || b == 0 {
                b' '
            } else {
                b
            }
        })
        .collect();
    // No NUL byte is left, so this cannot fail.
    std::ffi::CString::new(clean).unwrap_or_default()
}

/// Replies `value` on `ctx`: nil -> null, int -> integer, float -> bulk string,
/// str/bytes -> bulk string, list -> array, map -> flat array of key, value.
pub fn reply(context: &Context, value: &Value) {
    let ctx = context.ctx;
    // SAFETY: the `Context` convention (redis/mod.rs): `ctx` may reply now, being the
    // context of the command or callback this thread runs with the Redis lock, or a
    // blocked client's thread-safe context, which any thread may reply on without the
    // lock (Redis buffers it until the unblock). Every pointer passed (the CStrings, the
    // buffers in `bulk`) lives across its call; Redis copies what it keeps.
    unsafe {
        match value {
            Value::Nil => {
                raw::RedisModule_ReplyWithNull.unwrap()(ctx);
            }
            Value::Bool(b) => {
                raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *b as i64);
            }
            Value::Int(i) => {
                raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *i);
            }
            Value::Float(f) => bulk(ctx, format_float(*f).as_bytes()),
            Value::Str(s) => bulk(ctx, s.as_bytes()),
            Value::Bytes(b) => bulk(ctx, b),
            Value::Status(s) => {
                let s = legal_line(s);
                raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, s.as_ptr());
            }
            Value::Error(e) => {
                let e = legal_line(e);
                raw::RedisModule_ReplyWithError.unwrap()(ctx, e.as_ptr());
            }
            Value::List(items) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _);
                items.iter().for_each(|v| reply(context, v));
            }
            Value::Map(pairs) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, (pairs.len() * 2) as _);
                for (k, v) in pairs {
                    reply(context, k);
                    reply(context, v);
                }
            }
            Value::Host(_) => bulk(ctx, b"PY RECORD"),
        }
    }
}

/// Replies `bytes` as a bulk string.
///
/// # Safety
/// `ctx` is a context this thread may reply on now, as `reply` requires of its own.
unsafe fn bulk(ctx: *mut raw::RedisModuleCtx, bytes: &[u8]) {
    // SAFETY: `ctx` may reply now (the function's contract); the buffer is valid for
    // `bytes.len()` bytes during the call, and Redis copies it.
    unsafe {
        raw::RedisModule_ReplyWithStringBuffer.unwrap()(
            ctx,
            bytes.as_ptr() as *const c_char,
            bytes.len(),
        );
    }
}
