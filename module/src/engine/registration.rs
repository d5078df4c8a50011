//! Registrations: plans bound to events. Each event starts an execution of the plan in
//! the registration's mode; statistics are kept per registration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::backlog::Backlog;
use super::execution::RunAs;
use super::plan::Plan;
use super::value::Value;

/// RG.DUMPREGISTRATIONS statistics.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub triggered: u64,
    pub success: u64,
    pub failures: u64,
    pub aborted: u64,
    pub last_run_ms: u64,
    pub total_run_ms: u64,
    pub last_error: Option<String>,
    /// Async events that found the queue full and ran inline.
    pub overflows: u64,
}

impl Stats {
    /// Another shard's statistics of the same registration added in (RG.DUMPREGISTRATIONS
    /// CLUSTER): counts and durations sum, the last run is the longest of the last runs,
    /// the last error is the first shard's that has one.
    pub fn add(&mut self, other: &Stats) {
        self.triggered += other.triggered;
        self.success += other.success;
        self.failures += other.failures;
        self.aborted += other.aborted;
        self.last_run_ms = self.last_run_ms.max(other.last_run_ms);
        self.total_run_ms += other.total_run_ms;
        if self.last_error.is_none() {
            self.last_error.clone_from(&other.last_error);
        }
        self.overflows += other.overflows;
    }
}

/// What a registration reacts to, with its reader arguments.
pub trait Trigger: Send + Sync {
    /// The reader's name ("KeysReader").
    fn reader(&self) -> &'static str;
    /// Reader arguments as RG.DUMPREGISTRATIONS shows them (name, value pairs).
    fn args(&self) -> Vec<(String, Value)>;
    /// More RegistrationData entries (streams add lag and status).
    fn extra(&self, _paused: bool) -> Vec<(String, Value)> {
        Vec::new()
    }
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The front end that made a registration, by the name it has there.
pub enum Owner {
    /// A Python session, by id.
    Session(String),
    /// A Wasm guest, by name.
    Guest(String),
}

pub struct Registration {
    pub id: String,
    /// What each event runs (its mode, desc, reader spec and steps).
    pub plan: Arc<Plan>,
    pub trigger: Arc<dyn Trigger>,
    /// Whom its executions act for: its owner (the user that registered it) and the
    /// database it was registered in (a keyspace or command event's own database wins).
    pub run_as: RunAs,
    /// Owner (the Python session id), if any.
    pub session: Option<String>,
    /// Owner (the Wasm guest's name), if any.
    pub guest: Option<String>,
    /// Which register() call of the owner's script made it (0 for the first), or which
    /// of the guest's described registrations.
    pub session_index: usize,
    pub stats: Mutex<Stats>,
    pub paused: AtomicBool,
    /// Its async events waiting for a worker.
    pub backlog: Backlog,
    /// Host resources the registration keeps alive (the Python session).
    resources: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

impl Registration {
    /// Who made it: `guest:<name>` or `session:<id>` (what to delete or upgrade).
    pub fn owner_name(&self) -> String {
        match (&self.guest, &self.session) {
            (Some(g), _) => format!("guest:{g}"),
            (None, Some(s)) => format!("session:{s}"),
            (None, None) => "none".into(),
        }
    }

    /// A registration of `plan` on `trigger`, made by `owner`'s `index`th register() call
    /// (or described registration), acting as `run_as`.
    pub fn new(
        id: String,
        plan: Plan,
        trigger: Arc<dyn Trigger>,
        run_as: RunAs,
        owner: Owner,
        index: usize,
    ) -> Registration {
        let (session, guest) = match owner {
            Owner::Session(s) => (Some(s), None),
            Owner::Guest(g) => (None, Some(g)),
        };
        Registration {
            id,
            plan: Arc::new(plan),
            trigger,
            run_as,
            session,
            guest,
            session_index: index,
            stats: Default::default(),
            paused: Default::default(),
            backlog: Backlog::default(),
            resources: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a host resource alive as long as the registration.
    pub fn keep_alive(&self, resource: Box<dyn std::any::Any + Send>) {
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(resource);
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release)
    }

    /// Records the outcome of one triggered execution.
    pub fn record_run(&self, millis: u64, errors: &[String], aborted: bool) {
        let mut st = self.stats();
        st.last_run_ms = millis;
        st.total_run_ms += millis;
        if aborted {
            st.aborted += 1;
        } else if let Some(e) = errors.first() {
            st.failures += 1;
            st.last_error = Some(e.clone());
        } else {
            st.success += 1;
        }
    }
}

/// Every registration of this shard, by id.
#[derive(Default)]
pub struct Registrations {
    map: Mutex<BTreeMap<String, Arc<Registration>>>,
    /// Bumped on every change (0: there never was a registration).
    generation: std::sync::atomic::AtomicU64,
    /// The number of the last registration change made here: every master makes a change
    /// under the same number, so the master with the higher one has the newer set (one
    /// that joined, or came back from an old RDB, has a lower one). Persisted.
    version: std::sync::atomic::AtomicU64,
}

impl Registrations {
    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Registration>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, r: Arc<Registration>) {
        self.map().insert(r.id.clone(), r);
        self.bump();
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Registration>> {
        let removed = self.map().remove(id);
        self.bump();
        removed
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// A change numbered `version` was made here (versions only grow).
    pub fn advance(&self, version: u64) {
        self.version.fetch_max(version, Ordering::AcqRel);
    }

    /// The version an RDB file held (loading replaces what is in memory).
    pub fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::Release);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Registration>> {
        self.map().get(id).cloned()
    }

    /// All registrations, in id order.
    pub fn list(&self) -> Vec<Arc<Registration>> {
        self.map().values().cloned().collect()
    }

    /// Removes every registration (e.g. before loading a snapshot).
    pub fn clear(&self) -> Vec<Arc<Registration>> {
        let all = std::mem::take(&mut *self.map()).into_values().collect();
        self.bump();
        all
    }
}
