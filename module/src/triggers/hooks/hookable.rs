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

/// Checks that `command` can be intercepted; returns its first key position.
pub fn check_hookable(command: &str) -> Result<usize, String> {
    let name = command.to_ascii_lowercase();
    if name.starts_with("rg.") || NOT_HOOKABLE.contains(&name.as_str()) {
        return Err(format!("Can not hook or intercept the command '{command}'"));
    }
    let info = crate::readers::redis_call(&[b"COMMAND", b"INFO", name.as_bytes()])
        .map_err(|e| e.to_string())?;
    let Value::List(mut entries) = info else {
        return Err(format!("Unknown command '{command}'"));
    };
    let Some(Value::List(entry)) = entries.pop() else {
        return Err(format!("Unknown command '{command}'"));
    };
    let flags: Vec<String> = match entry.get(2) {
        Some(Value::List(flags)) => flags
            .iter()
            .map(|f| f.to_string().trim_matches('\'').to_string())
            .collect(),
        _ => Vec::new(),
    };
    if let Some(bad) = flags
        .iter()
        .find(|f| ["noscript", "movablekeys", "blocking"].contains(&f.as_str()))
    {
        return Err(format!(
            "Can not hook or intercept the command '{command}' (it is {bad})"
        ));
    }
    Ok(match entry.get(3) {
        Some(Value::Int(n)) if *n > 0 => *n as usize,
        _ => 0,
    })
}
