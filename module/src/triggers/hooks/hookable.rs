//! Which commands can be hooked or intercepted: never one that changes a client's
//! connection or the server's life, blocks, runs scripts, or has keys Redis cannot name
//! in advance.

use crate::engine::value::Value;

/// Commands that can never be hooked or intercepted.
const NOT_HOOKABLE: &[&str] = &[
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "function",
    "script",
    "wait",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "monitor",
    // A client's connection state, or the server's life: never someone else's code.
    "select",
    "auth",
    "hello",
    "reset",
    "quit",
    "debug",
    "shutdown",
    "sync",
    "psync",
    "replconf",
];

/// Checks that `command` can be intercepted; returns its first key position. `by_key`:
/// the interception picks commands by their key (a hook's keyprefix, `commands=`), which
/// a command whose keys move cannot offer. Texts are RedisGears 1.2's where it had one.
pub fn check_hookable(command: &str, by_key: bool) -> Result<usize, String> {
    let name = command.to_ascii_lowercase();
    if name.starts_with("rg.") {
        return Err(format!("Can not hook or intercept the command '{command}'"));
    }
    let not_in_script =
        || format!("Can not override a command which are not allowed inside a script: '{command}'");
    if NOT_HOOKABLE.contains(&name.as_str()) {
        return Err(not_in_script());
    }
    let info = crate::readers::redis_call(&[b"COMMAND", b"INFO", name.as_bytes()])
        .map_err(|e| e.to_string())?;
    let unknown = || format!("Can not override an unexisting command: '{command}'");
    let Value::List(mut entries) = info else {
        return Err(unknown());
    };
    let Some(Value::List(entry)) = entries.pop() else {
        return Err(unknown());
    };
    let flags: Vec<String> = match entry.get(2) {
        Some(Value::List(flags)) => flags
            .iter()
            .map(|f| f.to_string().trim_matches('\'').to_string())
            .collect(),
        _ => Vec::new(),
    };
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    if has("noscript") {
        return Err(not_in_script());
    }
    if has("blocking") {
        return Err(format!(
            "Can not hook or intercept the command '{command}' (it is blocking)"
        ));
    }
    if by_key && has("movablekeys") {
        return Err(format!(
            "Can not hook a command with moveable keys by key prefix: '{command}'"
        ));
    }
    Ok(match entry.get(3) {
        Some(Value::Int(n)) if *n > 0 => *n as usize,
        _ => 0,
    })
}
