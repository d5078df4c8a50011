//! A fast path for the reads recipes do most: `execute('hget', key, field)` through the
//! key API instead of a command call.
//!
//! Why: RedisModule_Call allocates a client and argument objects, looks the command up,
//! times it, writes the reply as RESP and parses it back; for a one-field read that is
//! most of the cost of a recipe's `execute()` (recipe 2 does one per key).
//!
//! What stays the same as HGET through RedisModule_Call: the reply (nil for a missing key
//! or field, the value's bytes otherwise), the WRONGTYPE error text, and the key lookup
//! itself: RedisModule_OpenKey in read mode is the `lookupKeyRead` HGET does (lazy expiry,
//! LRU/LFU update, keyspace hits/misses, the `keymiss` notification).
//! What differs: the read is not counted in INFO commandstats, not shown by MONITOR or
//! SLOWLOG, and not seen by other modules' command filters (ours lets the module's own
//! calls through anyway). Only user `execute()` takes this path; hooks call.
//!
//! Off on a cluster node (RedisModule_Call refuses keys of other shards there; the key
//! API would read them) and when HGET is not a command of this server (rename-command).
//!
//! The readers' `key_type` (a KeysReader record, a keyspace trigger's readValue) is the
//! same idea for the TYPE they ask before reading a value. It is always on: a reader's
//! keys are this shard's own (scanned here, or the key of an event here).

use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::{raw, Context};

use super::call::call;
use super::string::OwnedString;
use crate::engine::value::Value;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// HGET's reply to a key of another type (Redis's `shared.wrongtypeerr`).
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Decides once, at load on the main thread, whether the fast path may be used.
pub fn init(ctx: &Context) {
    // SAFETY: `ctx` is the load context, used on the main thread during OnLoad (the
    // `Context` convention, redis/mod.rs); GetContextFlags only reads.
    let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(ctx.ctx) };
    let cluster = flags & raw::REDISMODULE_CTX_FLAGS_CLUSTER as i32 != 0;
    // `COMMAND INFO hget` is [nil] when rename-command renamed or removed HGET.
    let hget_exists = matches!(
        call(ctx, &[b"COMMAND", b"INFO", b"hget"]),
        Value::List(entries) if matches!(entries.first(), Some(Value::List(_)))
    );
    ENABLED.store(!cluster && hget_exists, Ordering::Release);
}

/// The reply of `args` when it is a read this path serves, else None (the caller runs
/// the command). `ctx` must be usable now: the main thread, or the Redis lock held.
pub fn try_read(ctx: &Context, args: &[&[u8]]) -> Option<Value> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    match args {
        [cmd, key, field] if cmd.eq_ignore_ascii_case(b"hget") => {
            Some(super::lock::calling(|| hget(ctx, key, field)))
        }
        _ => None,
    }
}

/// A key opened for reading, closed on drop.
struct OpenKey(*mut raw::RedisModuleKey);

impl Drop for OpenKey {
    fn drop(&mut self) {
        // SAFETY: `self.0` is what OpenKey returned in `hget` (CloseKey accepts NULL
        // too), closed once, here, before `hget` returns and so under the same lock.
        unsafe { raw::RedisModule_CloseKey.unwrap()(self.0) };
    }
}

fn hget(ctx: &Context, key: &[u8], field: &[u8]) -> Value {
    let key_name = OwnedString::new(key);
    // SAFETY: `ctx` may be used by this thread now (the `Context` convention: `try_read`'s
    // callers pass `lock::context()`, the Redis lock held). The key name outlives the
    // handle: declared before it, so dropped after it, and CloseKey gives back the
    // reference OpenKey took before then.
    let handle = OpenKey(unsafe {
        raw::RedisModule_OpenKey.unwrap()(ctx.ctx, key_name.as_ptr(), raw::REDISMODULE_READ as i32)
    });
    if handle.0.is_null() {
        return Value::Nil; // no such key (read mode opens no missing key)
    }
    // SAFETY: `handle.0` is a non-null key opened above and not closed yet.
    if unsafe { raw::RedisModule_KeyType.unwrap()(handle.0) }
        != raw::REDISMODULE_KEYTYPE_HASH as i32
    {
        return Value::Error(WRONGTYPE.into());
    }
    let field = OwnedString::new(field);
    let mut value: *mut raw::RedisModuleString = std::ptr::null_mut();
    // SAFETY: an open key of type hash (checked above). The variadic part is (field,
    // &value) pairs ended by NULL, as HashGet expects without REDISMODULE_HASH_CFIELDS;
    // `field` and `value` outlive the call, and `value` is a valid place for a pointer.
    let status = unsafe {
        raw::RedisModule_HashGet.unwrap()(
            handle.0,
            raw::REDISMODULE_HASH_NONE as i32,
            field.as_ptr(),
            &mut value as *mut *mut raw::RedisModuleString,
            std::ptr::null_mut::<raw::RedisModuleString>(),
        )
    };
    if status != raw::REDISMODULE_OK as i32 {
        return Value::Error(WRONGTYPE.into());
    }
    if value.is_null() {
        return Value::Nil;
    }
    // SAFETY: non-null, so HashGet stored a new string for the field: ours to free, as
    // no context here has automatic memory (nothing in this crate turns it on), and on
    // this thread only.
    let value = unsafe { OwnedString::from_raw(value) };
    Value::from_redis_bytes(value.bytes())
}

/// redismodule.h's REDISMODULE_OPEN_KEY_NOTOUCH (Redis 6.2+), which the bindings lack.
const OPEN_KEY_NOTOUCH: i32 = 1 << 16;

/// A key's type as the key API tells it (`key_type`).
pub enum KeyType {
    /// No such key (or expired).
    Missing,
    /// A built-in type, by TYPE's name for it.
    Builtin(&'static str),
    /// A module's type: only TYPE names it.
    Module,
}

/// TYPE without a command call: one lookup in the same mode TYPE makes (lazy expiry,
/// keyspace hits and misses, no LRU/LFU touch). `ctx` must be usable now: the main thread,
/// or the Redis lock held. (The value itself is not read here: RedisModule_StringDMA,
/// the key API's only string read, re-encodes an int or embstr string in place.)
pub fn key_type(ctx: &Context, key: &[u8]) -> KeyType {
    let key_name = OwnedString::new(key);
    let mode = raw::REDISMODULE_READ as i32 | OPEN_KEY_NOTOUCH;
    let handle = super::lock::calling(|| {
        // SAFETY: as in `hget`: `ctx` may be used by this thread now (the caller's
        // contract), and the key name is dropped after the handle, which CloseKey
        // releases first.
        let key = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, key_name.as_ptr(), mode) };
        OpenKey(key)
    });
    if handle.0.is_null() {
        return KeyType::Missing;
    }
    // SAFETY: `handle.0` is a non-null key opened above and not closed yet.
    let found = unsafe { raw::RedisModule_KeyType.unwrap()(handle.0) };
    if found == raw::REDISMODULE_KEYTYPE_EMPTY as i32 {
        return KeyType::Missing;
    }
    [
        (raw::REDISMODULE_KEYTYPE_STRING, "string"),
        (raw::REDISMODULE_KEYTYPE_LIST, "list"),
        (raw::REDISMODULE_KEYTYPE_HASH, "hash"),
        (raw::REDISMODULE_KEYTYPE_SET, "set"),
        (raw::REDISMODULE_KEYTYPE_ZSET, "zset"),
        (raw::REDISMODULE_KEYTYPE_STREAM, "stream"),
    ]
    .into_iter()
    .find(|(t, _)| *t as i32 == found)
    .map_or(KeyType::Module, |(_, name)| KeyType::Builtin(name))
}
