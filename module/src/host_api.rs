//! The language-neutral host API: what a recipe or a guest may ask of the module while
//! its code runs. `python/gears_module.rs` (the `_gears` module) and
//! `wasm/host_state.rs` (the guest's `host` imports) adapt it to their language, so both hosts behave alike and
//! neither reaches into triggers/ or the launcher.
//!
//! Taking the Redis lock is the adapters' part: each host waits for it its own way
//! (Python without the GIL, a guest with its clock stopped).

use redis_module::logging::{self, RedisLogLevel};

use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::call::with_refs;
use crate::redis::door;
use crate::triggers::hooks::{chain, intercept};

pub use crate::redis::door::Caller;

/// execute(): a Redis command, through the one door user code takes into Redis.
pub fn execute(caller: Caller, command: &[Vec<u8>]) -> Value {
    with_refs(command, |refs| execute_refs(caller, refs))
}

/// [`execute`] of a command whose arguments are borrowed.
pub fn execute_refs(caller: Caller, command: &[&[u8]]) -> Value {
    match door::execute(caller, command) {
        // Redis names no key and no slot; a recipe's author needs both.
        Value::Error(e) if e.contains(NON_LOCAL) => Value::Error(non_local(command).unwrap_or(e)),
        reply => reply,
    }
}

/// A key of a slot this shard owns but is migrating away (the key already left): the
/// cluster is changing under the execution, so it stops, aborted, rather than go on
/// without this write. An event's execution that fails so is run again (a stream's
/// batch is read again), which is how nothing is lost while slots move.
fn slot_moving(key: &[u8], slot: u16) -> String {
    if let Some(flag) = crate::launch::current_abort_flag() {
        flag.store(true, std::sync::atomic::Ordering::Release);
    }
    format!(
        "ERR execute(): key '{}' is in slot {slot}, which is moving to another shard: the \
         execution is aborted",
        String::from_utf8_lossy(key)
    )
}

/// What Redis says when a module calls a command with a key of another cluster node.
const NON_LOCAL: &str = "non local key";

/// The error of a call whose key another master owns: which key, its slot, whose it is.
/// (The Redis lock is held: the call just returned.)
fn non_local(args: &[&[u8]]) -> Option<String> {
    let ctx = crate::redis::lock::context();
    let mut getkeys: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYS"];
    getkeys.extend_from_slice(args);
    let Value::List(keys) = crate::redis::call::call(&ctx, &getkeys) else {
        return None;
    };
    let topology = globals().topology();
    keys.iter().find_map(|k| {
        let key = match k {
            Value::Str(s) => s.as_bytes(),
            Value::Bytes(b) => b.as_slice(),
            _ => return None,
        };
        let slot = crate::cluster::slots::key_slot(key);
        let owner = topology.owner(slot)?;
        if owner.id == topology.me {
            return Some(slot_moving(key, slot));
        }
        Some(format!(
            "ERR execute(): key '{}' is in slot {slot}, which shard {} ({}:{}) owns, not this \
             one; repartition() moves a record to the shard of its key",
            String::from_utf8_lossy(key),
            owner.id,
            owner.ip,
            owner.port
        ))
    })
}

/// call_next(): inside a hook, the next hook of the command or the command itself, with
/// `args` (without the command's name).
pub fn call_next(caller: Caller, args: Vec<Vec<u8>>) -> Result<Value, String> {
    chain::call_next(caller, args)
}

/// override_reply(): inside a `commands=` registration (sync or async_local), the reply its client gets.
/// A text reply follows `text_reply`'s rule.
pub fn override_reply(reply: Value) -> Result<(), String> {
    let reply = match reply {
        Value::Str(text) => text_reply(text),
        other => other,
    };
    intercept::override_reply(reply)
}

/// The rule for a text that user code gives as a reply (RedisGears 1.2's): a leading '+'
/// makes a status reply, a leading '-' an error reply, anything else a bulk string.
pub fn text_reply(text: String) -> Value {
    if let Some(status) = text.strip_prefix('+') {
        Value::Status(status.to_string())
    } else if let Some(error) = text.strip_prefix('-') {
        Value::Error(error.to_string())
    } else {
        Value::Str(text)
    }
}

/// The error for a level log() does not know: RedisGears 1.2's words, so code written
/// for it matches.
const UNKNOWN_LEVEL: &str =
    "Log level should be one of the following : debug,verbose,notice,warning";

/// A level log() takes: Redis's four, spelled as Redis does (case matters, as in 1.2).
fn log_level(name: &str) -> Result<RedisLogLevel, String> {
    Ok(match name {
        "debug" => RedisLogLevel::Debug,
        "verbose" => RedisLogLevel::Verbose,
        "notice" => RedisLogLevel::Notice,
        "warning" => RedisLogLevel::Warning,
        _ => return Err(UNKNOWN_LEVEL.into()),
    })
}

/// log(): a line in the Redis log. Another level is an error and writes nothing, as
/// RedisGears 1.2's log() raised.
/// Whether RG.ABORTEXECUTION asked the execution running on this thread to stop (code
/// that computes a long time without calling Redis polls it).
pub fn abort_requested() -> bool {
    crate::launch::abort_requested_here()
}

/// The abort flag of the execution running on this thread, for a watchdog of the host.
pub fn abort_flag() -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    crate::launch::current_abort_flag()
}

pub fn log(level: &str, message: &str) -> Result<(), String> {
    logging::log(log_level(level)?, format!("GEARS: {message}"));
    Ok(())
}

/// configGet(): a module setting, or a user setting saved by RG.CONFIGSET.
pub fn config_get(name: &str) -> Option<String> {
    crate::config::get_by_name(name)
}

/// This shard's id (40 hex characters).
pub fn shard_id() -> String {
    crate::globals::globals().shard_id.clone()
}

/// hashtag(): a tag whose slot this shard owns, without braces (recipes write
/// `'{%s}' % hashtag()`, as for RedisGears 1.2).
pub fn hashtag() -> String {
    globals().topology().hashtag()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reply_reads_a_leading_plus_or_minus() {
        // Value's == takes a status for the str of the same text: match the kinds.
        assert!(matches!(text_reply("+OK".into()), Value::Status(s) if s == "OK"));
        assert!(matches!(text_reply("-ERR no".into()), Value::Error(s) if s == "ERR no"));
        assert!(matches!(text_reply("plain".into()), Value::Str(s) if s == "plain"));
        assert!(matches!(text_reply("".into()), Value::Str(s) if s.is_empty()));
        assert!(matches!(text_reply("++".into()), Value::Status(s) if s == "+"));
    }

    #[test]
    fn log_knows_redis_four_levels_only() {
        for name in ["debug", "verbose", "notice", "warning"] {
            assert!(log_level(name).is_ok(), "{name}");
        }
        for name in ["info", "Warning", "", "notice "] {
            assert_eq!(
                log_level(name).err().as_deref(),
                Some(UNKNOWN_LEVEL),
                "{name:?}"
            );
        }
    }
}
