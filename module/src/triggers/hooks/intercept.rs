//! A command run for KeysReader registrations with `commands=`: the key events it raises
//! start their executions while it runs, and its client waits for them; any of them may
//! replace the command's reply (override_reply), a sync one on the main thread as an
//! async_local one on a worker, as in RedisGears 1.2.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::execution::Execution;
use crate::engine::value::Value;

/// What the intercepted command's client gets instead of the command's reply, if set.
type Slot = Arc<Mutex<Option<Value>>>;

/// The command being run for `commands=` registrations on this thread.
struct Intercept {
    command: String,
    execs: Vec<Arc<Execution>>,
    slot: Slot,
}

thread_local! {
    static INTERCEPT: RefCell<Option<Intercept>> = const { RefCell::new(None) };
}

/// The reply slot of each execution an intercepted command's client waits for, by the
/// execution's sequence number: how override_reply() finds it from a worker.
static AWAITED: Mutex<Option<HashMap<u64, Slot>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// For KeysReader registrations with `commands=`: the command causing the current event,
/// if one is intercepted on this thread.
pub fn current_command() -> Option<String> {
    INTERCEPT.with(|i| i.borrow().as_ref().map(|i| i.command.clone()))
}

/// Notes an execution the intercepted command's client must wait for (before it can
/// start: it may call override_reply at once).
pub fn await_execution(exec: &Arc<Execution>) {
    INTERCEPT.with(|i| {
        if let Some(i) = i.borrow_mut().as_mut() {
            lock(&AWAITED)
                .get_or_insert_with(HashMap::new)
                .insert(exec.seq, i.slot.clone());
            i.execs.push(exec.clone());
        }
    })
}

/// override_reply(): replaces the reply of the intercepted command, from an execution it
/// waits for (sync, on this thread, or async_local, on a worker).
pub fn override_reply(v: Value) -> Result<(), String> {
    let slot = INTERCEPT
        .with(|i| i.borrow().as_ref().map(|i| i.slot.clone()))
        .or_else(|| {
            let seq = crate::launch::current_execution()?;
            lock(&AWAITED).as_ref()?.get(&seq).cloned()
        });
    match slot {
        Some(slot) => {
            *lock(&slot) = Some(v);
            Ok(())
        }
        None => Err(
            "override_reply() can only be used by a registration with commands= (sync or \
             async_local), while its command waits"
                .into(),
        ),
    }
}

/// The reply of an intercepted command, once the executions it waits for have ended: an
/// override, or the command's own. Dropped, it forgets their slots.
pub struct Reply {
    slot: Slot,
    seqs: Vec<u64>,
}

impl Reply {
    pub fn answer(self, command_reply: Value) -> Value {
        lock(&self.slot).take().unwrap_or(command_reply)
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(map) = lock(&AWAITED).as_mut() {
            for seq in &self.seqs {
                map.remove(seq);
            }
        }
    }
}

/// Runs `command` through `call` as an intercepted command; `inline` runs the executions
/// its events start here whatever their mode. Returns the command's reply, the
/// executions its client must still wait for, and the reply to give once they ended.
pub fn run(
    command: &str,
    inline: bool,
    call: impl FnOnce() -> Value,
) -> (Value, Vec<Arc<Execution>>, Reply) {
    let slot: Slot = Arc::new(Mutex::new(None));
    INTERCEPT.with(|i| {
        *i.borrow_mut() = Some(Intercept {
            command: command.to_string(),
            execs: Vec::new(),
            slot: slot.clone(),
        })
    });
    let reply = {
        let _inline = crate::triggers::force_inline(inline);
        call()
    };
    let execs = INTERCEPT
        .with(|i| i.borrow_mut().take())
        .map_or_else(Vec::new, |i| i.execs);
    let seqs = execs.iter().map(|e| e.seq).collect();
    let pending = execs
        .into_iter()
        .filter(|e| !e.status().is_finished())
        .collect();
    (reply, pending, Reply { slot, seqs })
}
