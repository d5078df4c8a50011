//! The command filter's question, asked on every command: is it hooked, or listed in a
//! KeysReader registration's `commands=`? The names are recomputed only when the
//! registrations change.

use std::collections::HashSet;
use std::sync::Mutex;

use super::trigger::HookTrigger;
use crate::globals::globals;
use crate::triggers::keys::KeysTrigger;

/// The intercepted command names (lower case) as of a registrations generation.
struct Intercepted {
    generation: u64,
    names: HashSet<String>,
}

static INTERCEPTED: Mutex<Option<Intercepted>> = Mutex::new(None);

fn intercepted_now() -> HashSet<String> {
    let mut names = HashSet::new();
    for r in globals().registrations.list() {
        if let Some(h) = r.trigger.as_any().downcast_ref::<HookTrigger>() {
            names.insert(h.command.clone());
        }
        if let Some(k) = r.trigger.as_any().downcast_ref::<KeysTrigger>() {
            names.extend(k.commands.iter().flatten().map(|c| c.to_ascii_lowercase()));
        }
    }
    names
}

/// Whether the command named `name` (as sent, any case) is to become RG.INNERHOOK.
pub fn is_intercepted(name: &[u8]) -> bool {
    let generation = globals().registrations.generation();
    // No registration was ever made: the common case costs no allocation.
    if generation == 0 {
        return false;
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let mut cache = INTERCEPTED.lock().unwrap_or_else(|e| e.into_inner());
    if cache.as_ref().is_none_or(|c| c.generation != generation) {
        let names = intercepted_now();
        *cache = Some(Intercepted { generation, names });
    }
    cache.as_ref().is_some_and(|c| c.names.contains(&name))
}
