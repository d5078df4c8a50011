//! Guests a shard received from another to run a plan: a run of a guest that a shard
//! lacks (or has other bytes of) makes it ask the initiator for the bytes once; they are
//! compiled and kept here by content hash, so a repeated run does not ship them again.
//! They are not installed: RG.WASMLIST on this shard does not show them, and an upload
//! of the same name here is unaffected.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};

use crate::engine::execution::RunAs;
use crate::wasm::guests;
use crate::wasm::program::Program;

/// How many received guests are kept (the oldest goes first).
const KEPT: usize = 8;

static RECEIVED: Mutex<Vec<Arc<Program>>> = Mutex::new(Vec::new());

/// A guest of the plan that this shard does not have: ask for its bytes.
#[derive(Debug)]
pub struct Missing {
    pub name: String,
    pub hash: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "guest '{}' ({}) is not on this shard",
            self.name, self.hash
        )
    }
}

impl std::error::Error for Missing {}

/// The guest `name` with content `hash`: the one installed here, or one received.
pub fn find(name: &str, hash: &str) -> Result<Arc<Program>, Missing> {
    if let Some(p) = guests::get(name).filter(|p| p.hash == hash) {
        return Ok(p);
    }
    let received = RECEIVED.lock().unwrap_or_else(|e| e.into_inner());
    received
        .iter()
        .find(|p| p.name == name && p.hash == hash)
        .cloned()
        .ok_or_else(|| Missing {
            name: name.to_string(),
            hash: hash.to_string(),
        })
}

/// Compiles bytes another shard sent for guest `name` and keeps them, if they are the
/// bytes asked for.
pub fn receive(name: &str, hash: &str, bytes: Vec<u8>, owner: RunAs) -> Result<()> {
    let program = Program::load(name, None, bytes, owner)?;
    if program.hash != hash {
        bail!("the bytes received for guest '{name}' are not the ones asked for");
    }
    let mut received = RECEIVED.lock().unwrap_or_else(|e| e.into_inner());
    received.retain(|p| !(p.name == name && p.hash == hash));
    received.push(Arc::new(program));
    if received.len() > KEPT {
        received.remove(0);
    }
    Ok(())
}

/// The bytes of guest `name` with `hash` here, to send to a shard that lacks them.
pub fn bytes_of(name: &str, hash: &str) -> Option<Arc<Vec<u8>>> {
    find(name, hash).ok().map(|p| p.bytes.clone())
}
