//! Executions across the masters of a Redis Cluster.
//!
//! Each master runs its part of an execution as a [`Run`] whose sinks reach the other
//! masters through the link ([`ClusterPeers`]). The shard a client sent the run to is
//! the initiator: it sends the plan to every other master, starts everyone once all
//! have it ready (two-phase start, [`crate::cluster::messages`]), and gathers the
//! results. Frames arrive through RG.INNERMSG into the receiver's queue; one dispatcher
//! thread takes them in order and hands each to its execution, never waiting for a run
//! (plans are decoded and compiled on the pool).
//!
//! No execution ever hangs: the dispatcher also watches every distributed run, and one
//! that has waited for other shards longer than ExecutionMaxIdleTime ends aborted with
//! "Execution max idle reached" and the results it has. A shard that restarted or is
//! unreachable ends the runs it takes part in at once, naming it; so does a change of
//! the cluster's topology ("cluster topology changed").
//!
//! # Layout
//!
//! - `peers.rs`: [`ClusterPeers`], the runner's view of the other shards.
//! - `start.rs`: the initiator's side and a peer's side of the two-phase start.
//! - `ask.rs`: questions to every master (the execution commands cluster-wide).
//! - `changes.rs`: a registration command's change, staged, committed, replicated.
//! - `everywhere.rs`: a change made on every master or on none (two phases).
//! - `code.rs`, `restore.rs`: RG.DUMPCODE's payload; RG.RESTORECODE and RG.FLUSHCODE
//!   as changes.
//! - `sync.rs`: a master behind (joined later, old RDB) brought up to date.
//! - `info.rs`: the INFO section `rg_cluster`.
//! - `guests.rs`: guests received from another shard to run its plan.
//! - `plans.rs`: plans known by content hash, so a repeated run does not resend them.
//! - `membership.rs`: the topology, the links that follow it, their credentials.
//! - this file: the process-wide state, the table of distributed runs, the dispatcher.

pub mod ask;
pub mod changes;
pub mod code;
pub mod everywhere;
mod guests;
mod info;
mod membership;
mod peers;
mod plans;
pub mod restore;
mod start;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::link::{Event, Link, Settings};
use crate::cluster::messages::Message;
use crate::cluster::receiver::{self, Receiver};
use crate::config::{self, Key};
use crate::engine::run::Run;
use redis_module::logging::{log, RedisLogLevel};

pub use membership::{is_peer_user, refresh, refresh_topology};
pub use peers::ClusterPeers;
pub use start::start;

/// Unacknowledged bytes per peer before producers wait.
const WINDOW_BYTES: usize = 64 << 20;
/// Bytes of frames waiting in the receiver's queue before senders are told BUSY.
const INBOUND_BYTES: usize = 256 << 20;

/// One distributed run on this shard.
struct Entry {
    run: Arc<Run>,
    peers: Arc<ClusterPeers>,
    /// Initiator: the shards that answered RECEIVED, and whether RUN went out.
    received: HashSet<String>,
    started: bool,
    /// The last sign of life: a frame for it, or its own stage running.
    seen: Instant,
    /// Initiator: the plan as offered, encoded with its bytes (for a peer that asks for
    /// them), and its hash.
    plan: Option<Arc<SentPlan>>,
    /// Initiator, its own part done: what runs once every shard sent DONE.
    after_done: Option<crate::launch::Then>,
}

/// A plan the initiator offered.
struct SentPlan {
    hash: String,
    /// `Message::Plan` with the plan's bytes, encoded.
    full: (u8, Vec<u8>),
}

/// This master's part of the cluster: its link to the others and its distributed runs.
pub struct Cluster {
    pub me: String,
    pub link: Link,
    pub receiver: Receiver,
    runs: Mutex<HashMap<String, Entry>>,
    /// Offers waiting for bytes (their guest's, or the plan's), by execution id.
    waiting: Mutex<HashMap<String, crate::cluster::messages::Offer>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cluster layer, on a cluster node once the module loaded.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get()
}

/// Starts the link and the dispatcher (at load, on a cluster node).
pub fn init(me: &str, incarnation: &str, secret: Option<Vec<u8>>) -> std::io::Result<()> {
    let link = Link::new(
        Settings {
            me: me.to_string(),
            incarnation: incarnation.to_string(),
            secret: secret.clone(),
            window_bytes: WINDOW_BYTES,
            retries: || config::get(Key::SendMsgRetries).max(0) as u64,
        },
        Arc::new(on_link_event),
    );
    let _ = CLUSTER.set(Cluster {
        me: me.to_string(),
        link,
        receiver: Receiver::new(incarnation, secret, INBOUND_BYTES),
        runs: Mutex::new(HashMap::new()),
        waiting: Mutex::new(HashMap::new()),
    });
    crate::launch::set_spread(start::start_registration);
    ask::answer_with(sync::STATE, sync::state);
    thread::Builder::new()
        .name("gears-dispatch".into())
        .spawn(dispatch)
        .map(|_| ())
}

fn on_link_event(event: Event) {
    match event {
        Event::Restarted { peer, lost } => {
            log(
                RedisLogLevel::Notice,
                format!("gears: shard {peer} restarted ({lost} frames to it were given up)"),
            );
            end_runs_with(&peer, &format!("shard {peer} restarted"));
        }
        Event::Unreachable { peer, why } => {
            log(
                RedisLogLevel::Warning,
                format!("gears: shard {peer} is unreachable: {why}"),
            );
            end_runs_with(&peer, &format!("shard {peer} is unreachable: {why}"));
        }
        Event::Reachable { peer } => log(
            RedisLogLevel::Notice,
            format!("gears: shard {peer} is reachable again"),
        ),
    }
}

/// Ends every distributed run `peer` takes part in.
fn end_runs_with(peer: &str, why: &str) {
    let Some(c) = cluster() else { return };
    let runs: Vec<Arc<Run>> = lock(&c.runs)
        .values()
        .filter(|e| e.peers.has(peer))
        .map(|e| e.run.clone())
        .collect();
    for run in runs {
        run.give_up(why.to_string());
    }
    c.fail_waiting(|e| e.peers.has(peer), why);
}

/// Ends this shard's part of distributed run `id` with `why`, if it has one; whether it
/// had.
pub fn give_up(id: &str, why: &str) -> bool {
    let Some(run) = cluster().and_then(|c| lock(&c.runs).get(id).map(|e| e.run.clone())) else {
        return false;
    };
    run.give_up(why.to_string());
    true
}

/// The topology changed: every distributed run in flight ends.
pub fn topology_changed() {
    let Some(c) = cluster() else { return };
    let runs: Vec<Arc<Run>> = lock(&c.runs).values().map(|e| e.run.clone()).collect();
    for run in runs {
        run.give_up("cluster topology changed".into());
    }
    c.fail_waiting(|_| true, "cluster topology changed");
}

impl Cluster {
    /// The other masters by node id: those that own slots, and with `spare_too` those
    /// that own none.
    pub fn other_masters(&self, spare_too: bool) -> Vec<String> {
        let topology = crate::globals::globals().topology();
        let masters: Vec<_> = if spare_too {
            topology.members().collect()
        } else {
            topology.shards.iter().collect()
        };
        masters
            .into_iter()
            .map(|s| s.id.clone())
            .filter(|id| *id != self.me)
            .collect()
    }

    /// Initiator: runs whose own part ended but which wait for other shards' DONE, and
    /// match `which`, end failed with `why` (aborted, so a stream batch is read again).
    fn fail_waiting(&self, which: impl Fn(&Entry) -> bool, why: &str) {
        let failed: Vec<(Arc<Run>, crate::launch::Then)> = {
            let mut runs = lock(&self.runs);
            let ids: Vec<String> = runs
                .iter()
                .filter(|(_, e)| e.after_done.is_some() && which(e))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| runs.remove(id))
                .filter_map(|e| Some((e.run.clone(), e.after_done?)))
                .collect()
        };
        for (run, then) in failed {
            let exec = run.execution();
            {
                let mut st = exec.state();
                st.status = crate::engine::execution::Status::Aborted;
                st.errors.push(why.to_string());
            }
            run_then(then, exec.clone());
        }
    }

    fn insert(&self, id: &str, run: Arc<Run>, peers: Arc<ClusterPeers>) {
        lock(&self.runs).insert(
            id.to_string(),
            Entry {
                run,
                peers,
                received: HashSet::new(),
                started: false,
                seen: Instant::now(),
                plan: None,
                after_done: None,
            },
        );
    }

    /// Initiator: runs `then` once every other shard sent DONE for `id` (or failed).
    fn wait_for_done(&self, id: &str, then: crate::launch::Then) {
        let mut runs = lock(&self.runs);
        match runs.get_mut(id) {
            Some(e) => {
                e.seen = Instant::now();
                e.after_done = Some(then);
            }
            None => {
                drop(runs);
                if let Some(exec) = crate::globals::globals().registry.get(id) {
                    run_then(then, exec);
                }
            }
        }
    }

    fn forget(&self, id: &str) {
        lock(&self.runs).remove(id);
    }

    fn run_of(&self, id: &str) -> Option<Arc<Run>> {
        let mut runs = lock(&self.runs);
        let e = runs.get_mut(id)?;
        e.seen = Instant::now();
        Some(e.run.clone())
    }

    /// Sends `message` to the shard with node id `to`.
    pub fn send(&self, to: &str, message: Message) -> anyhow::Result<()> {
        self.send_frame(to, &message.encode())
    }

    /// Sends `message`, encoded once, to each of `to`; every one is tried, and the first
    /// failure is returned.
    pub fn send_each<'a>(
        &self,
        to: impl IntoIterator<Item = &'a String>,
        message: Message,
    ) -> anyhow::Result<()> {
        let frame = message.encode();
        let mut outcome = Ok(());
        for peer in to {
            let sent = self.send_frame(peer, &frame);
            if outcome.is_ok() {
                outcome = sent;
            }
        }
        outcome
    }

    /// Sends an encoded message (`Message::encode`) to `to`.
    pub fn send_frame(&self, to: &str, (kind, body): &(u8, Vec<u8>)) -> anyhow::Result<()> {
        self.link.send(to, *kind, body)
    }
}

/// Runs an execution's `then` (a stream batch's acknowledgement: Redis calls) on the
/// pool, whose workers give the Redis lock back; never on the dispatcher.
fn run_then(then: crate::launch::Then, exec: Arc<crate::engine::execution::Execution>) {
    crate::globals::globals().pool.submit(move || {
        then(&exec);
        crate::redis::lock::release_slice();
    });
}

/// The dispatcher thread: takes frames in order, and watches for idle runs.
fn dispatch() {
    let Some(c) = cluster() else { return };
    let mut last_check = Instant::now();
    loop {
        if let Some(m) = c.receiver.next(Duration::from_millis(100)) {
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(c, m)));
            if handled.is_err() {
                log(
                    RedisLogLevel::Warning,
                    "gears: handling a frame from another shard panicked (a bug was caught)",
                );
            }
        }
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            watch_idle(c);
            ask::settle();
            everywhere::expire();
            sync::tick();
        }
    }
}

fn handle(c: &'static Cluster, m: receiver::Message) {
    let (from, kind, body) = match m {
        receiver::Message::Restarted { from } => {
            plans::peer_forgot(&from);
            end_runs_with(&from, &format!("shard {from} restarted"));
            return;
        }
        receiver::Message::Frame { from, kind, body } => (from, kind, body),
    };
    let message = match Message::decode(kind, &body) {
        Ok(m) => m,
        Err(e) => {
            log(
                RedisLogLevel::Warning,
                format!("gears: a bad frame from shard {from}: {e:#}"),
            );
            return;
        }
    };
    match message {
        Message::Plan(offer) => start::on_plan(c, from, offer),
        Message::Received { exec } => start::on_received(c, &exec, &from),
        Message::Refused { exec, why } => start::on_refused(c, &exec, &from, &why),
        Message::Run { exec } => {
            if let Some(run) = c.run_of(&exec) {
                run.spawn();
            }
        }
        Message::Batch { exec, batch } => {
            if let Some(run) = c.run_of(&exec) {
                run.deliver(batch);
            }
        }
        Message::Abort { exec, why } => {
            if let Some(run) = c.run_of(&exec) {
                run.give_up(why.clone());
            }
            // Initiator, its own part done and waiting for the others': failed.
            c.fail_waiting(|e| e.run.execution().id == exec, &why);
        }
        Message::NeedPlan { exec } => start::on_need_plan(c, &from, &exec),
        Message::NeedGuest { exec, name, hash } => start::on_need_guest(c, &from, exec, name, hash),
        Message::Guest {
            exec,
            name,
            hash,
            bytes,
        } => start::on_guest(c, from, exec, name, hash, bytes),
        Message::Ask { exec, what, arg } => ask::on_ask(c, &from, exec, &what, &arg),
        Message::Answer { exec, reply } => ask::on_answer(&from, &exec, reply),
        Message::Change { step, payload, .. } if step == sync::SNAPSHOT => {
            crate::globals::globals()
                .pool
                .submit(move || sync::on_snapshot(&from, &payload))
        }
        Message::Change {
            exec,
            step,
            payload,
        } => everywhere::on_change(c, from, exec, &step, payload),
        Message::Changed { exec, error } => everywhere::on_changed(&from, &exec, error),
        Message::Done { exec: id } => {
            if let Some(e) = lock(&c.runs).get_mut(&id) {
                e.seen = Instant::now();
            }
            let Some(exec) = crate::globals::globals().registry.get(&id) else {
                return;
            };
            let complete = {
                let mut st = exec.state();
                st.shards_completed += 1;
                st.shards_completed
            };
            let then = {
                let mut runs = lock(&c.runs);
                let ready = runs
                    .get(&id)
                    .is_some_and(|e| e.after_done.is_some() && complete >= e.peers.shards().len());
                if ready {
                    runs.remove(&id).and_then(|e| e.after_done)
                } else {
                    None
                }
            };
            if let Some(then) = then {
                run_then(then, exec);
            }
        }
    }
}

/// Ends runs that waited for other shards longer than ExecutionMaxIdleTime.
fn watch_idle(c: &Cluster) {
    let idle = Duration::from_millis(config::get(Key::ExecutionMaxIdleTime).max(1) as u64);
    let now = Instant::now();
    let mut over = Vec::new();
    {
        let mut runs = lock(&c.runs);
        for e in runs.values_mut() {
            if let Some(why) = e.peers.send_failed() {
                over.push((e.run.clone(), why));
                continue;
            }
            if e.run.busy() {
                e.seen = now;
            } else if now.duration_since(e.seen) > idle && !e.run.finished() {
                over.push((e.run.clone(), "Execution max idle reached".to_string()));
            }
        }
    }
    for (run, why) in over {
        run.give_up(why);
    }
    c.fail_waiting(
        |e| now.duration_since(e.seen) > idle,
        "Execution max idle reached (waiting for other shards to finish)",
    );
}
