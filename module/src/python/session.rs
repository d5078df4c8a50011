//! Sessions: one per RG.PYEXECUTE, alive while its script, executions or registrations
//! are. A session keeps its source text: registrations are persisted and replicated as
//! the script that made them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::engine::execution::RunAs;

#[derive(Clone)]
struct Entry {
    desc: Option<String>,
    code: Arc<str>,
    /// Whom the session's code acts for (persisted and replicated with its source).
    run_as: RunAs,
    handle: Weak<Handle>,
}

static SESSIONS: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn sessions() -> MutexGuard<'static, BTreeMap<String, Entry>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

struct Handle {
    id: String,
    /// The globals dict of the session's script, released when the session ends.
    globals: Mutex<Option<Py<PyDict>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let globals = self.globals.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(globals) = globals.take() {
            super::janitor::release(globals);
        }
        let mut map = sessions();
        // Only the entry of this very handle goes (an upgrade may have replaced it).
        if map
            .get(&self.id)
            .is_some_and(|e| std::ptr::eq(e.handle.as_ptr(), self))
        {
            map.remove(&self.id);
        }
    }
}

/// A reference that keeps a session listed; the session goes when the last one drops.
#[derive(Clone)]
pub struct SessionRef(Arc<Handle>);

impl SessionRef {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The globals dict the session's script runs in (released when the session ends).
    pub fn set_globals(&self, globals: Py<PyDict>) {
        *self.0.globals.lock().unwrap_or_else(|e| e.into_inner()) = Some(globals);
    }
}

/// The entry a new session took over (UPGRADE); put back if the new script fails.
pub struct Displaced {
    id: String,
    entry: Entry,
}

impl Displaced {
    pub fn restore(self) {
        if self.entry.handle.strong_count() > 0 {
            sessions().insert(self.id, self.entry);
        }
    }
}

fn fresh_id(map: &BTreeMap<String, Entry>) -> String {
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let id = format!("{:016x}-{}", nanos, NEXT.fetch_add(1, Ordering::Relaxed));
        if !map.contains_key(&id) {
            return id;
        }
    }
}

/// Opens a session. An explicit id in use is refused unless `take_over` (UPGRADE,
/// re-creation on load), which returns the entry it displaced.
pub fn open(
    id: Option<String>,
    desc: Option<String>,
    code: &str,
    run_as: RunAs,
    take_over: bool,
) -> Result<(SessionRef, Option<Displaced>), String> {
    let mut map = sessions();
    let id = match id {
        Some(id) => id,
        None => fresh_id(&map),
    };
    let live = map
        .get(&id)
        .filter(|e| e.handle.strong_count() > 0)
        .cloned();
    if live.is_some() && !take_over {
        return Err(format!("Session {id} already exists"));
    }
    let handle = Arc::new(Handle {
        id: id.clone(),
        globals: Mutex::new(None),
    });
    map.insert(
        id.clone(),
        Entry {
            desc,
            code: code.into(),
            run_as,
            handle: Arc::downgrade(&handle),
        },
    );
    let displaced = live.map(|entry| Displaced { id, entry });
    Ok((SessionRef(handle), displaced))
}

/// Whether a session with this id is live.
pub fn exists(id: &str) -> bool {
    sessions()
        .get(id)
        .is_some_and(|e| e.handle.strong_count() > 0)
}

/// (description, source text, whom it acts for) of a live session.
pub fn source(id: &str) -> Option<(Option<String>, Arc<str>, RunAs)> {
    sessions()
        .get(id)
        .filter(|e| e.handle.strong_count() > 0)
        .map(|e| (e.desc.clone(), e.code.clone(), e.run_as.clone()))
}

/// (id, description, source) of every live session.
pub fn sources() -> Vec<(String, Option<String>, Arc<str>)> {
    sessions()
        .iter()
        .filter(|(_, e)| e.handle.strong_count() > 0)
        .map(|(id, e)| (id.clone(), e.desc.clone(), e.code.clone()))
        .collect()
}

/// (id, description, reference count) of every live session.
pub fn dump() -> Vec<(String, Option<String>, usize)> {
    sessions()
        .iter()
        .filter(|(_, e)| e.handle.strong_count() > 0)
        .map(|(id, e)| (id.clone(), e.desc.clone(), e.handle.strong_count()))
        .collect()
}

/// How many sessions are live.
pub fn live_count() -> usize {
    sessions()
        .values()
        .filter(|e| e.handle.strong_count() > 0)
        .count()
}
