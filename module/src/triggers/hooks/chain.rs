//! A command's hooks as a chain: the last registered runs first, and each reaches the
//! next one (or the real command) through call_next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::trigger::HookTrigger;
use crate::engine::execution::{ExecState, Execution};
use crate::engine::reader::VecReader;
use crate::engine::registration::Registration;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::call::with_refs;
use crate::redis::door::{self, Caller};

/// A hook execution's place in its chain.
struct HookFrame {
    command: String,
    /// Hooks behind it, next first.
    next: Vec<Arc<Registration>>,
}

/// Frames of running hook executions, by execution sequence number.
static FRAMES: Mutex<Option<HashMap<u64, HookFrame>>> = Mutex::new(None);

fn frames<R>(f: impl FnOnce(&mut HashMap<u64, HookFrame>) -> R) -> R {
    let mut guard = FRAMES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Default::default))
}

/// The hooks of `command` called with `args`, in the order they run.
fn hooks_for(command: &str, args: &[Vec<u8>]) -> Vec<Arc<Registration>> {
    let mut hooks: Vec<Arc<Registration>> = globals()
        .registrations
        .list()
        .into_iter()
        .filter(|r| {
            r.trigger
                .as_any()
                .downcast_ref::<HookTrigger>()
                .is_some_and(|h| h.hooks(command, args))
        })
        .collect();
    // Last registered runs first.
    hooks.sort_by_key(|r| std::cmp::Reverse(registration_seq(&r.id)));
    hooks
}

fn registration_seq(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or(0)
}

/// What a hook execution answers: its first error, else its one result (or the list).
pub fn result(st: &ExecState) -> Value {
    if let Some(e) = st.errors.first() {
        return Value::Error(e.clone());
    }
    match st.results.as_slice() {
        [one] => one.clone(),
        many => Value::List(many.to_vec()),
    }
}

/// Starts `hook` over `[command, args...]` with `next` hooks behind it; `inline` runs it
/// here whatever its mode.
fn run_hook(
    hook: &Arc<Registration>,
    command: &str,
    args: &[Vec<u8>],
    next: Vec<Arc<Registration>>,
    inline: bool,
) -> Arc<Execution> {
    let record = Value::List(args.iter().map(|a| Value::from_redis_bytes(a)).collect());
    let frame = std::cell::Cell::new(Some(HookFrame {
        command: command.to_string(),
        next,
    }));
    let prepare = |exec: &Arc<Execution>| {
        if let Some(frame) = frame.take() {
            frames(|f| f.insert(exec.seq, frame));
            let seq = exec.seq;
            exec.on_finish(Box::new(move |_| {
                frames(|f| f.remove(&seq));
            }));
        }
    };
    let _inline = crate::triggers::force_inline(inline);
    crate::triggers::fire_then(
        hook,
        Box::new(VecReader::new(vec![record])),
        None,
        Some(&prepare),
    )
}

/// Starts the hook chain of `command` called with `args` (`args[0]` is the command), if
/// it has hooks; `inline` runs the first hook here whatever its mode.
pub fn start(command: &str, args: &[Vec<u8>], inline: bool) -> Option<Arc<Execution>> {
    let mut hooks = hooks_for(command, args);
    if hooks.is_empty() {
        return None;
    }
    let first = hooks.remove(0);
    Some(run_hook(&first, command, args, hooks, inline))
}

/// call_next(*args): the next hook of the running chain (run here), or the real command
/// (through the door, as the hook's `caller`).
pub fn call_next(caller: Caller, args: Vec<Vec<u8>>) -> Result<Value, String> {
    let current = crate::launch::current_execution();
    let frame = current
        .and_then(|seq| frames(|f| f.get(&seq).map(|h| (h.command.clone(), h.next.clone()))));
    let Some((command, next)) = frame else {
        // RedisGears 1.2's text, which tools match.
        return Err("Can not get CommandHook ctx (call_next() can only be used by a hook)".into());
    };
    let mut full = vec![command.clone().into_bytes()];
    full.extend(args);
    match next.split_first() {
        None => Ok(with_refs(&full, |refs| door::execute(caller, refs))),
        Some((hook, rest)) => {
            let exec = run_hook(hook, &command, &full, rest.to_vec(), true);
            let st = exec.state();
            Ok(result(&st))
        }
    }
}
