//! A command run for KeysReader registrations with `commands=`: the key events it raises
//! start their executions while it runs, and its client waits for them; a sync one may
//! replace the command's reply (override_reply).

use std::cell::RefCell;
use std::sync::Arc;

use crate::engine::execution::Execution;
use crate::engine::value::Value;

/// The command being run for `commands=` registrations on this thread.
struct Intercept {
    command: String,
    execs: Vec<Arc<Execution>>,
    override_reply: Option<Value>,
}

thread_local! {
    static INTERCEPT: RefCell<Option<Intercept>> = const { RefCell::new(None) };
}

/// For KeysReader registrations with `commands=`: the command causing the current event,
/// if one is intercepted on this thread.
pub fn current_command() -> Option<String> {
    INTERCEPT.with(|i| i.borrow().as_ref().map(|i| i.command.clone()))
}

/// Notes an execution the intercepted command's client must wait for.
pub fn await_execution(exec: Arc<Execution>) {
    INTERCEPT.with(|i| {
        if let Some(i) = i.borrow_mut().as_mut() {
            i.execs.push(exec);
        }
    })
}

/// override_reply(): replaces the reply of the intercepted command (sync executions).
pub fn override_reply(v: Value) -> Result<(), String> {
    INTERCEPT.with(|i| match i.borrow_mut().as_mut() {
        Some(i) => {
            i.override_reply = Some(v);
            Ok(())
        }
        None => Err("override_reply() can only be used by a registration with commands= running in sync mode".into()),
    })
}

/// Runs `command` through `call` as an intercepted command; `inline` runs the executions
/// its events start here whatever their mode. Returns the reply the client gets (the
/// command's, or an override) and the executions it must still wait for.
pub fn run(
    command: &str,
    inline: bool,
    call: impl FnOnce() -> Value,
) -> (Value, Vec<Arc<Execution>>) {
    INTERCEPT.with(|i| {
        *i.borrow_mut() = Some(Intercept {
            command: command.to_string(),
            execs: Vec::new(),
            override_reply: None,
        })
    });
    let reply = {
        let _inline = crate::triggers::force_inline(inline);
        call()
    };
    let Some(intercept) = INTERCEPT.with(|i| i.borrow_mut().take()) else {
        return (reply, Vec::new());
    };
    let pending = intercept
        .execs
        .into_iter()
        .filter(|e| !e.status().is_finished())
        .collect();
    (intercept.override_reply.unwrap_or(reply), pending)
}
