//! A guest as uploaded: its bytes compiled once, checked against the contract, described
//! once, and a small pool of ready instances.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};

use super::bindings::{types, GuestPre, CONTRACT_VERSION, OLDEST_CONTRACT, PLANS_INTERFACE};
use super::host_state::HostState;
use super::runtime::{self, Fault, GuestInstance};
use crate::config::{self, Key};
use crate::engine::execution::RunAs;

/// Idle instances kept per guest (one per worker and the main thread is the usual need).
const IDLE_KEEP: usize = 8;

pub struct Program {
    pub name: String,
    pub desc: Option<String>,
    pub bytes: Arc<Vec<u8>>,
    /// sha256 of the bytes, hex.
    pub hash: String,
    /// The contract version the guest was built against.
    pub version: String,
    pub description: types::Description,
    /// Whom its jobs and registrations act for: the user that uploaded it, in the
    /// database it was uploaded from.
    pub owner: RunAs,
    pre: GuestPre<HostState>,
    idle: Mutex<Vec<GuestInstance>>,
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// Refuses what cannot be a guest before compiling it, with a message that says why.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("not a WebAssembly component (the bytes do not start with \\0asm)");
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        bail!(
            "a core WebAssembly module, not a component: build the guest with the guest-sdk \
             for --target wasm32-wasip2"
        );
    }
    Ok(())
}

/// The contract version in the name of the guest's exported `plans` interface.
fn contract_version(component: &wasmtime::component::Component) -> Result<String> {
    let engine = runtime::engine()?;
    let ty = component.component_type();
    let prefix = format!("{PLANS_INTERFACE}@");
    let found = ty
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix(prefix.as_str()).map(str::to_string));
    let version = found.ok_or_else(|| {
        anyhow!(
            "the component does not export {PLANS_INTERFACE} (it is of another world; \
             build it with the guest-sdk)"
        )
    })?;
    if major(&version) != major(CONTRACT_VERSION) {
        bail!(
            "the guest speaks contract version {version}, this server speaks \
             {CONTRACT_VERSION} and runs guests of {OLDEST_CONTRACT} or a later {}.x \
             (rebuild the guest with a matching guest-sdk)",
            major(CONTRACT_VERSION)
        );
    }
    Ok(version)
}

impl Program {
    /// Compiles, checks and describes a guest. Nothing is registered yet.
    pub fn load(name: &str, desc: Option<String>, bytes: Vec<u8>, owner: RunAs) -> Result<Program> {
        check_header(&bytes)?;
        let component = wasmtime::component::Component::new(runtime::engine()?, &bytes)
            .map_err(|e| anyhow!("the component does not compile: {e:#}"))?;
        let version = contract_version(&component)?;
        let pre = runtime::prepare(&component)
            .map_err(|e| anyhow!("the component does not fit the guest world: {e:#}"))?;
        let mut live =
            GuestInstance::new(&pre).map_err(|e| anyhow!("cannot instantiate: {e:#}"))?;
        live.store.data_mut().describing = true;
        let description = live.call(|g, s| g.redisgears_guest_plans().call_describe(s));
        live.store.data_mut().describing = false;
        let description = description.map_err(|f| match f {
            Fault::Error(e) => anyhow!("describe failed: {e}"),
            Fault::Trapped(e) => anyhow!("describe failed: {e}"),
            Fault::Aborted => anyhow!("describe was aborted"),
        })?;
        let hash = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Program {
            name: name.to_string(),
            desc,
            bytes: Arc::new(bytes),
            hash,
            version,
            description,
            owner,
            pre,
            idle: Mutex::new(vec![live]),
        })
    }

    /// An instance for one run (a pooled one, or a new one from the InstancePre).
    pub fn checkout(&self) -> Result<GuestInstance, Fault> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut live = match pooled {
            Some(live) => live,
            None => GuestInstance::new(&self.pre)
                .map_err(|e| Fault::Trapped(format!("cannot instantiate the guest: {e:#}")))?,
        };
        live.store.data_mut().memory_cap =
            (config::get(Key::WasmMaxMemoryMB).max(1) as usize) << 20;
        Ok(live)
    }

    /// Gives back an instance that is still sound.
    pub fn checkin(&self, live: GuestInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_KEEP {
            idle.push(live);
        }
    }

    /// Closes a run or generator handle and gives the instance back if it is still sound.
    pub fn release(&self, mut live: GuestInstance, handle: u32) {
        let closed = live.call(|g, s| g.redisgears_guest_plans().call_close(s, handle).map(Ok));
        if closed.is_ok() {
            self.checkin(live);
        }
    }

    /// Instances kept ready for the next run (INFO).
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the guest was built for contract `major.minor` or a later minor of it.
    pub fn speaks(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.version.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(ma), Some(mi)) => ma == major && mi >= minor,
            _ => false,
        }
    }

    pub fn job(&self, name: &str) -> Option<&types::Plan> {
        self.description.jobs.iter().find(|j| j.name == name)
    }
}
