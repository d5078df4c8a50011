//! Process-wide state created at module load.

use std::sync::OnceLock;

use crate::engine::pool::Pool;
use crate::engine::registration::Registrations;
use crate::engine::registry::Registry;

pub struct Globals {
    /// The 40-hex id of this shard (all zeros on a standalone Redis).
    pub shard_id: String,
    pub registry: Registry,
    pub registrations: Registrations,
    pub pool: Pool,
    /// Whether the Python host started (PythonEnabled 1 and a working interpreter).
    pub python: bool,
}

static GLOBALS: OnceLock<Globals> = OnceLock::new();

pub fn init(globals: Globals) {
    let _ = GLOBALS.set(globals);
}

/// The process-wide state. Only called after a successful load.
pub fn globals() -> &'static Globals {
    GLOBALS
        .get()
        .unwrap_or_else(|| unreachable!("gears used before the module was loaded"))
}
