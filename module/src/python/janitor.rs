//! Releasing a finished session's globals. A session's module-level names live in its
//! globals dict, which its functions reference back (`__globals__`): only Python's cyclic
//! GC would free them, and an idle server never runs it. When a session's last run or
//! registration ends, its dict is cleared and the cycles collected, on a thread of its
//! own: clearing a big session holds the GIL for a while, which must not be the main
//! thread's time, and this thread never touches Redis.

use std::sync::OnceLock;

use crossbeam_channel::{unbounded, Sender};
use pyo3::prelude::*;
use pyo3::types::PyDict;

static QUEUE: OnceLock<Sender<Py<PyDict>>> = OnceLock::new();

/// Starts the janitor thread. Called once at load.
pub fn start() -> std::io::Result<()> {
    let (tx, rx) = unbounded::<Py<PyDict>>();
    std::thread::Builder::new()
        .name("gears-janitor".into())
        .spawn(move || {
            for first in rx.iter() {
                Python::attach(|py| {
                    // Everything queued meanwhile goes too; then one collection for all.
                    for globals in std::iter::once(first).chain(rx.try_iter()) {
                        globals.bind(py).clear();
                    }
                    // A failed collection only leaves cycles for the next one.
                    let _ = py.import("gc").and_then(|gc| gc.call_method0("collect"));
                });
            }
        })?;
    let _ = QUEUE.set(tx);
    Ok(())
}

/// Clears `globals` soon (the session it belonged to has ended).
pub fn release(globals: Py<PyDict>) {
    if let Some(tx) = QUEUE.get() {
        // The receiver lives as long as the process.
        let _ = tx.send(globals);
    }
}
