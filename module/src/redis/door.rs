//! The one door user code goes through into Redis: every `execute()` of a recipe or a
//! guest, and the real command behind a hook's `call_next()`.
//!
//! Why one door: a module's calls run on a client with no user, in database 0, allowed
//! to do anything. Code users send must instead act for them, and must never take Redis
//! down. At the door, in this order:
//! 1. commands no user code may call are refused: those that stop or crash the server
//!    (DEBUG, SHUTDOWN), those that only make sense on a connection of one's own (SELECT,
//!    MULTI, SUBSCRIBE, MONITOR, AUTH, ...), the module's internal commands, and for guests
//!    every RG.* command;
//! 2. each user the run acts for (`RunAs`: the owner of the code, and the client that
//!    started a guest's job) must be allowed the command, its keys and channels by ACL;
//! 3. the call acts on the run's database;
//! 4. guests call as a Lua script would (no `noscript` command, no write over
//!    maxmemory); Python calls with RedisGears' reach; HGET takes the fast path.
//!
//! Commands that would block run without blocking (the module's clients deny it), and
//! RG.* commands that would block their client refuse instead (`blocked.rs`).
//! The module's own calls (readers, stream acknowledgements, hooks' bookkeeping) do not
//! come through here: they act for the module, on data the run was already allowed.

use std::cell::RefCell;

use redis_module::{Context, ContextFlags};

use super::call::{call_in, Mode};
use super::{acl, fast, lock};
use crate::engine::execution::RunAs;
use crate::engine::value::Value;

/// Who is calling through the door.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Caller {
    /// A Python recipe: not a sandbox, but never a crash.
    Python,
    /// A Wasm guest: a sandbox, through execute() too.
    Guest,
}

/// Commands no user code may call.
const NEVER: &[(&str, &str)] = &[
    ("debug", "it can crash or stop the server"),
    ("shutdown", "it stops the server"),
    (
        "select",
        "a run acts on the database of the client or event that started it",
    ),
    ("multi", "use atomic() for a block of commands"),
    ("exec", "use atomic() for a block of commands"),
    ("discard", "use atomic() for a block of commands"),
    ("watch", "use atomic() for a block of commands"),
    ("unwatch", "use atomic() for a block of commands"),
    ("monitor", "it needs a connection of its own"),
    ("subscribe", "it needs a connection of its own"),
    ("psubscribe", "it needs a connection of its own"),
    ("ssubscribe", "it needs a connection of its own"),
    ("unsubscribe", "it needs a connection of its own"),
    ("punsubscribe", "it needs a connection of its own"),
    ("sunsubscribe", "it needs a connection of its own"),
    ("auth", "it needs a connection of its own"),
    ("hello", "it needs a connection of its own"),
    ("reset", "it needs a connection of its own"),
    ("quit", "it needs a connection of its own"),
    ("sync", "it needs a connection of its own"),
    ("psync", "it needs a connection of its own"),
    ("replconf", "it needs a connection of its own"),
];

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Why `caller` may never call `command`, if so. This runs on every call: the names
/// are compared only when the length matches, without allocating.
pub fn refusal(caller: Caller, command: &[u8]) -> Option<String> {
    let named = || String::from_utf8_lossy(command).to_ascii_lowercase();
    if let Some((_, why)) = NEVER.iter().find(|(name, _)| {
        name.len() == command.len() && name.as_bytes().eq_ignore_ascii_case(command)
    }) {
        let command = named();
        return Some(format!(
            "ERR execute(): '{command}' is not allowed here: {why}"
        ));
    }
    if starts_with_ignore_case(command, b"rg.inner") {
        let command = named();
        return Some(format!(
            "ERR execute(): '{command}' is internal to the module"
        ));
    }
    if caller == Caller::Guest && starts_with_ignore_case(command, b"rg.") {
        let command = named();
        return Some(format!(
            "ERR execute(): a guest may not call '{command}' (no RG.* command from a guest)"
        ));
    }
    None
}

thread_local! {
    /// Whom the code running on this thread acts for, innermost last (a hook's
    /// call_next runs the next hook inside the current one).
    static ACTING: RefCell<Vec<RunAs>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// The command the door last let through on this thread, and for whom.
    static LAST_ADMITTED: RefCell<Option<(Caller, Vec<u8>)>> = const { RefCell::new(None) };
}

/// While it lives, calls through the door on this thread act for one run.
pub struct Acting {
    _db: lock::DbScope,
}

impl Drop for Acting {
    fn drop(&mut self) {
        ACTING.with(|a| a.borrow_mut().pop());
    }
}

/// Calls through the door on this thread act as `run_as` until the guard drops; so do
/// the module's own calls for the run, as far as the database goes.
pub fn act_as(run_as: &RunAs) -> Acting {
    let db = lock::use_db(run_as.db);
    ACTING.with(|a| a.borrow_mut().push(run_as.clone()));
    Acting { _db: db }
}

/// Whom this thread acts for now, if anyone.
pub fn acting() -> Option<RunAs> {
    ACTING.with(|a| a.borrow().last().cloned())
}

/// The ACL user a command acts for: its client's, or, when code running here called it
/// through the door, that code's owner. None for a call by another module, whose
/// client has no user (Redis checks no permission there, and has no name to give:
/// RedisModule_GetCurrentUserName would dereference a null user).
pub fn command_user(ctx: &Context) -> Option<String> {
    let flags = ctx.get_flags();
    let called_by_a_module = flags.contains(ContextFlags::DENY_BLOCKING)
        && !flags.intersects(ContextFlags::MULTI | ContextFlags::LUA);
    if called_by_a_module {
        return lock::in_call()
            .then(acting)
            .flatten()
            .map(|r| r.user.to_string());
    }
    Some(ctx.get_current_user().to_string_lossy())
}

/// Runs `args` (command name first) for the code running on this thread, as `caller`.
/// The caller may touch Redis now (main thread, or the worker lock taken).
pub fn execute(caller: Caller, args: &[&[u8]]) -> Value {
    let mode = match admit(caller, args) {
        Ok(mode) => mode,
        Err(e) => return Value::Error(e),
    };
    let ctx = lock::context();
    crate::engine::fault::hit(crate::engine::fault::Point::HostCall);
    // The fast path serves reads a script may do too (HGET): both modes take it.
    if let Some(v) = fast::try_read(&ctx, args) {
        return v;
    }
    let reply = call_in(&ctx, args, mode);
    if args[0].eq_ignore_ascii_case(b"acl") {
        // After the call: a check made before it must not be remembered.
        acl::users_may_have_changed();
    }
    reply
}

/// Steps 1 and 2: refusals and ACL; the mode to call in.
fn admit(caller: Caller, args: &[&[u8]]) -> Result<Mode, String> {
    let Some(first) = args.first() else {
        return Err("ERR execute() needs a command name".into());
    };
    // Code calls the same command over and over: the last one let through is not
    // looked up again.
    let known = LAST_ADMITTED.with(|l| {
        l.borrow()
            .as_ref()
            .is_some_and(|(c, name)| *c == caller && name.as_slice() == *first)
    });
    if !known {
        if let Some(why) = refusal(caller, first) {
            return Err(why);
        }
        LAST_ADMITTED.with(|l| *l.borrow_mut() = Some((caller, first.to_vec())));
    }
    // Borrowed, not cloned: nothing below starts an execution on this thread (the ACL
    // check may only ask Redis about a user).
    ACTING.with(|acting| {
        let acting = acting.borrow();
        let Some(run_as) = acting.last() else {
            return Err(
                "ERR execute() can only be called by code that runs in an execution or a script"
                    .to_string(),
            );
        };
        for user in run_as.users() {
            acl::check(user, args)?;
        }
        Ok(())
    })?;
    Ok(match caller {
        Caller::Python => Mode::Full,
        Caller::Guest => Mode::Script,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_no_code_may_call() {
        for caller in [Caller::Python, Caller::Guest] {
            for cmd in [
                "debug",
                "shutdown",
                "select",
                "multi",
                "monitor",
                "subscribe",
            ] {
                assert!(
                    refusal(caller, cmd.as_bytes()).is_some(),
                    "{caller:?} {cmd}"
                );
            }
            assert!(refusal(caller, b"rg.innerhook").is_some());
            assert!(refusal(caller, b"rg.innerregister").is_some());
            assert!(refusal(caller, b"set").is_none());
            assert!(refusal(caller, b"hget").is_none());
        }
    }

    #[test]
    fn guests_call_no_gears_command() {
        assert!(refusal(Caller::Guest, b"rg.pyexecute").is_some());
        assert!(refusal(Caller::Guest, b"rg.getexecution").is_some());
        // Python keeps RedisGears' reach (its blocking commands refuse by themselves).
        assert!(refusal(Caller::Python, b"rg.pyexecute").is_none());
        assert!(refusal(Caller::Python, b"rg.dumpregistrations").is_none());
    }

    #[test]
    fn refusals_say_why() {
        let e = refusal(Caller::Python, b"select").unwrap_or_default();
        assert!(e.contains("'select'") && e.contains("database"), "{e}");
    }

    #[test]
    fn a_run_acts_for_one_user_at_a_time() {
        let outer = RunAs::new("alice", 3);
        let _a = act_as(&outer);
        assert_eq!(lock::current_db(), 3);
        {
            let inner = RunAs::new("bob", 5);
            let _b = act_as(&inner);
            assert_eq!(acting().map(|r| r.user.to_string()).as_deref(), Some("bob"));
            assert_eq!(lock::current_db(), 5);
        }
        assert_eq!(
            acting().map(|r| r.user.to_string()).as_deref(),
            Some("alice")
        );
        assert_eq!(lock::current_db(), 3);
    }
}
