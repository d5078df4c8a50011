//! Sessions: one per RG.PYEXECUTE, alive while its script or executions run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

struct Entry {
    desc: Option<String>,
    handle: Weak<Handle>,
}

static SESSIONS: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn sessions() -> MutexGuard<'static, BTreeMap<String, Entry>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

struct Handle {
    id: String,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut map = sessions();
        if map
            .get(&self.id)
            .is_some_and(|e| e.handle.strong_count() == 0)
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
}

/// Opens a new session; an explicit id that is in use is refused.
pub fn open(id: Option<String>, desc: Option<String>) -> Result<SessionRef, String> {
    let mut map = sessions();
    let id = match id {
        Some(id) => {
            if map.get(&id).is_some_and(|e| e.handle.strong_count() > 0) {
                return Err(format!("Session {id} already exists"));
            }
            id
        }
        None => loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let id = format!("{:016x}-{}", nanos, NEXT.fetch_add(1, Ordering::Relaxed));
            if !map.contains_key(&id) {
                break id;
            }
        },
    };
    let handle = Arc::new(Handle { id: id.clone() });
    map.insert(
        id,
        Entry {
            desc,
            handle: Arc::downgrade(&handle),
        },
    );
    Ok(SessionRef(handle))
}

/// (id, description, reference count) of every live session.
pub fn dump() -> Vec<(String, Option<String>, usize)> {
    sessions()
        .iter()
        .filter(|(_, e)| e.handle.strong_count() > 0)
        .map(|(id, e)| (id.clone(), e.desc.clone(), e.handle.strong_count()))
        .collect()
}
