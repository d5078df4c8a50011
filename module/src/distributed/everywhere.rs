//! A change made on every master or on none: what RG.PYEXECUTE with register(),
//! RG.WASMUPLOAD and the other registration commands do on a cluster.
//!
//! Two phases, as a run's start. The master the client sent the command to stages the
//! change itself, then sends it (CHANGE prepare) to every other master. Each stages it
//! ([`changes::stage`]: everything that can fail, nothing live yet) and answers CHANGED
//! with its error, if any. Only when every master staged it do all commit (CHANGE
//! commit, answered again once live and replicated); one refusal, or a master silent
//! past the deadline, cancels it everywhere and the client gets each shard's error.
//!
//! The initiator waits on a thread that may wait (the offload helper), never on the
//! main thread or the dispatcher. A peer keeps a staged change until it is committed or
//! cancelled, or for [`KEEP`] deadlines when the initiator went away: then it is dropped,
//! the change was not made.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis_module::logging::{log, RedisLogLevel};

use super::changes::{self, Change, Ready};
use super::{cluster, lock, Cluster};
use crate::cluster::messages::Message;
use crate::config::{self, Key};
use crate::globals::globals;
use crate::redis::lock as redis_lock;

/// The steps of a change, as CHANGE frames carry them.
pub const PREPARE: &str = "prepare";
pub const COMMIT: &str = "commit";
pub const CANCEL: &str = "cancel";

/// How many deadlines a peer keeps a staged change the initiator never settled.
const KEEP: u32 = 4;

static NEXT: AtomicU64 = AtomicU64::new(1);

type Outcome = (String, Result<(), String>);

/// Initiator: the answers awaited, by change id.
static WAITING: Mutex<Option<HashMap<String, Sender<Outcome>>>> = Mutex::new(None);

/// Peer: staged changes, by change id, with when they were staged.
static STAGED: Mutex<Option<HashMap<String, (Ready, Instant)>>> = Mutex::new(None);

/// How long a master may take to stage or commit a change (a guest's compile included).
fn deadline() -> Duration {
    let idle = config::get(Key::ExecutionMaxIdleTime).max(1) as u64;
    Duration::from_millis(idle.max(10_000))
}

/// The other masters a change must reach (none without a cluster).
pub fn peers() -> Vec<String> {
    cluster().map_or_else(Vec::new, |c| c.other_masters(true))
}

/// The number a new change made here gets.
pub fn next_version() -> u64 {
    globals().registrations.version() + 1
}

/// Initiator, on a thread that may wait: makes `change` (already staged here) on every
/// other master, or on none. `Ok` with the change's number once every other master
/// committed it; then this master commits it too. An error names each shard that
/// refused or did not answer.
pub fn on_every_master(change: &Change) -> Result<u64, String> {
    let version = next_version();
    let Some(c) = cluster() else {
        return Ok(version);
    };
    let peers = peers();
    if peers.is_empty() {
        return Ok(version);
    }
    let req = format!("{}-change-{}", c.me, NEXT.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = channel();
    lock(&WAITING)
        .get_or_insert_with(HashMap::new)
        .insert(req.clone(), tx);
    let outcome = two_phases(c, &req, change, version, &peers, &rx);
    if let Some(m) = lock(&WAITING).as_mut() {
        m.remove(&req);
    }
    outcome.map(|()| version)
}

fn two_phases(
    c: &Cluster,
    req: &str,
    change: &Change,
    version: u64,
    peers: &[String],
    rx: &Receiver<Outcome>,
) -> Result<(), String> {
    let step = |step: &str, payload: Vec<u8>| Message::Change {
        exec: req.to_string(),
        step: step.to_string(),
        payload,
    };
    let errors = round(c, peers, step(PREPARE, change.encode()), rx);
    if !errors.is_empty() {
        let _ = c.send_each(peers, step(CANCEL, Vec::new()));
        return Err(format!("nothing was changed: {}", errors.join("; ")));
    }
    let errors = round(c, peers, step(COMMIT, version.to_string().into_bytes()), rx);
    if !errors.is_empty() {
        return Err(format!(
            "the change was made on this shard's peers except: {}",
            errors.join("; ")
        ));
    }
    Ok(())
}

/// Sends `message` to every peer and gathers their answers; the errors, by shard.
fn round(c: &Cluster, peers: &[String], message: Message, rx: &Receiver<Outcome>) -> Vec<String> {
    let frame = message.encode();
    let mut errors = Vec::new();
    let mut waiting: Vec<&String> = Vec::new();
    for peer in peers {
        match c.send_frame(peer, &frame) {
            Ok(()) => waiting.push(peer),
            Err(e) => errors.push(format!("shard {peer}: {e:#}")),
        }
    }
    let until = Instant::now() + deadline();
    while !waiting.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let Ok((from, outcome)) = rx.recv_timeout(left) else {
            break;
        };
        if let Some(i) = waiting.iter().position(|p| **p == from) {
            waiting.swap_remove(i);
            if let Err(e) = outcome {
                errors.push(format!("shard {from}: {e}"));
            }
        }
    }
    for peer in waiting {
        errors.push(format!(
            "shard {peer} did not answer within {} ms",
            deadline().as_millis()
        ));
    }
    errors
}

/// Initiator: a peer answered a step of change `req`.
pub fn on_changed(from: &str, req: &str, error: Option<String>) {
    if let Some(tx) = lock(&WAITING).as_ref().and_then(|m| m.get(req)) {
        let _ = tx.send((from.to_string(), error.map_or(Ok(()), Err)));
    }
}

/// Peer: a step of change `req` from the initiator `from`.
pub fn on_change(c: &'static Cluster, from: String, req: String, step: &str, payload: Vec<u8>) {
    let key = req.clone();
    let answer = move |error: Option<String>| {
        let changed = Message::Changed {
            exec: req.clone(),
            error,
        };
        if !globals().topology().members().any(|s| s.id == from) {
            // A master this one has not seen yet (the cluster just formed, or it just
            // joined): read the topology now, so there is a link to answer it on.
            let ctx = redis_lock::context();
            super::refresh_topology(&ctx);
            redis_lock::release_slice();
        }
        if let Err(e) = c.send(&from, changed) {
            log(
                RedisLogLevel::Warning,
                format!("gears: answering shard {from}'s change: {e:#}"),
            );
        }
    };
    if super::membership::is_replica() {
        // Taken for a master for a moment (just made a replica): its master replicates
        // the change to it.
        answer(None);
        return;
    }
    match step {
        PREPARE => globals().pool.submit(move || {
            let staged = Change::decode(&payload)
                .map_err(|e| format!("{e:#}"))
                .and_then(changes::stage);
            match staged {
                Ok(ready) => {
                    lock(&STAGED)
                        .get_or_insert_with(HashMap::new)
                        .insert(key, (ready, Instant::now()));
                    answer(None);
                }
                Err(e) => answer(Some(e)),
            }
        }),
        COMMIT => {
            let staged = lock(&STAGED).as_mut().and_then(|m| m.remove(&key));
            match staged {
                Some((ready, _)) => globals().pool.submit(move || {
                    let version = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(next_version);
                    let ctx = redis_lock::context();
                    ready.commit(&ctx, version);
                    redis_lock::release_slice();
                    answer(None);
                }),
                None => answer(Some(
                    "the change is no longer staged here (it waited too long)".into(),
                )),
            }
        }
        // Dropping the staged change undoes the staging.
        _ => drop(lock(&STAGED).as_mut().and_then(|m| m.remove(&key))),
    }
}

/// Peer: drops changes whose initiator never settled them.
pub fn expire() {
    let keep = deadline() * KEEP;
    let expired: Vec<Ready> = {
        let mut staged = lock(&STAGED);
        let Some(m) = staged.as_mut() else { return };
        let old: Vec<String> = m
            .iter()
            .filter(|(_, (_, at))| at.elapsed() > keep)
            .map(|(k, _)| k.clone())
            .collect();
        old.iter()
            .filter_map(|k| m.remove(k))
            .map(|(r, _)| r)
            .collect()
    };
    drop(expired);
}
