//! Process-wide state created at module load.

use std::sync::{Arc, OnceLock, RwLock};

use crate::cluster::topology::Topology;
use crate::engine::pool::Pool;
use crate::engine::registration::Registrations;
use crate::engine::registry::Registry;

pub struct Globals {
    /// The 40-hex id of this shard: its cluster node id (all zeros on a standalone Redis).
    pub shard_id: String,
    /// The masters and their slots (this shard alone on a standalone Redis).
    pub topology: RwLock<Arc<Topology>>,
    pub registry: Registry,
    pub registrations: Registrations,
    pub pool: Pool,
    /// Whether the Python host started (PythonEnabled 1 and a working interpreter).
    pub python: bool,
}

impl Globals {
    /// The topology as last read.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the topology; true when it changed.
    pub fn set_topology(&self, topology: Topology) -> bool {
        let mut current = self.topology.write().unwrap_or_else(|e| e.into_inner());
        if **current == topology {
            return false;
        }
        *current = Arc::new(topology);
        true
    }
}

static GLOBALS: OnceLock<Globals> = OnceLock::new();

pub fn init(globals: Globals) {
    let _ = GLOBALS.set(globals);
}

/// The process-wide state, if the module has loaded (INFO may come before, in a crash
/// report).
pub fn loaded() -> Option<&'static Globals> {
    GLOBALS.get()
}

/// The process-wide state. Only called after a successful load.
pub fn globals() -> &'static Globals {
    GLOBALS
        .get()
        .unwrap_or_else(|| unreachable!("gears used before the module was loaded"))
}
