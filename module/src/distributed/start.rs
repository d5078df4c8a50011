//! The two-phase start of a distributed run: the initiator's side ([`start`],
//! [`on_received`], [`on_refused`]) and a peer's ([`on_plan`]).

use std::sync::{Arc, Weak};

use anyhow::{anyhow, bail, Context as _, Result};

use super::{cluster, guests, lock, plans, Cluster, ClusterPeers, SentPlan};
use crate::cluster::messages::{Message, Offer};
use crate::config::{self, Key};
use crate::engine::execution::{Execution, RunAs};
use crate::engine::plan::{Host, Plan};
use crate::engine::reader::{Reader, VecReader};
use crate::engine::run::{Alone, Peers, Run};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::{self, Launch};
use crate::plans::readers::reader_of;
#[cfg(feature = "python")]
use crate::python::host::PythonHost;
use crate::redis::lock;
use crate::wasm::host::WasmHost;

/// Starts `job` on every master when this node is one of several: the plan goes to
/// the others, and the run starts once all have it. Gives the job back when the run
/// stays on this shard (not a cluster, or this node owns no slots).
pub fn start(job: Launch) -> Result<(), Launch> {
    spread(job, None)
}

/// Starts the run of registration `registration` an event began here on every master:
/// stage 1 reads the event here alone, later stages run where their records go. Every
/// master has the registration under the same id, so only its id travels. Gives the job
/// back when the run stays on this shard.
pub fn start_registration(job: Launch, registration: &str) -> Result<(), Launch> {
    let Some(c) = cluster() else { return Err(job) };
    if !globals().topology().shards.iter().any(|s| s.id == c.me) {
        // An event here, yet this shard owns no slot as far as it knows: it was just
        // promoted, or slots just moved to it. Read the topology now.
        let _ctx = lock::context();
        super::refresh_topology(&_ctx);
        lock::release_slice();
    }
    if !globals().topology().shards.iter().any(|s| s.id == c.me) {
        // Run here alone, its records could not reach their shards: it ends aborted
        // instead (a stream's batch is read again).
        let run = launch::run_with(job, Arc::new(Alone));
        run.give_up(format!(
            "shard {} owns no slot in the cluster's topology yet: the event's execution \
             is aborted",
            c.me
        ));
        return Ok(());
    }
    spread(job, Some(registration.to_string()))
}

fn spread(job: Launch, registration: Option<String>) -> Result<(), Launch> {
    let Some(c) = cluster() else { return Err(job) };
    let topology = globals().topology();
    let shards: Vec<String> = topology.shards.iter().map(|s| s.id.clone()).collect();
    let Some(me) = shards.iter().position(|id| *id == c.me) else {
        return Err(job);
    };
    if shards.len() < 2 {
        return Err(job);
    }
    let exec = job.exec.clone();
    let plan = job.plan.clone();
    let fingerprint = topology.fingerprint();
    let peers = Arc::new(ClusterPeers::new(&exec.id, shards, me, me, topology));
    let then = finish_here(job.then, Arc::downgrade(&peers));
    let run = launch::run_with(Launch { then: None, ..job }, peers.clone());
    run.then(then);
    exec.state().shards_received = 1;
    c.insert(&exec.id, run.clone(), peers.clone());
    let offer = Offer {
        exec: exec.id.clone(),
        hash: String::new(),
        plan: Vec::new(),
        shards: peers.shards().to_vec(),
        initiator: peers.initiator(),
        user: exec.run_as.user.to_string(),
        db: exec.run_as.db as i64,
        topology: fingerprint,
        registration: registration.unwrap_or_default(),
    };
    if !offer.registration.is_empty() {
        if let Err(e) = c.send_each(peers.others(), Message::Plan(offer)) {
            abort_everywhere(c, &peers, &exec.id);
            run.give_up(format!(
                "the execution could not be sent to every shard: {e:#}"
            ));
        }
        return Ok(());
    }
    globals().pool.submit(move || {
        let sent = plan.encode_keyed().and_then(|(bytes, key)| {
            // A shard that holds the plan already is offered its hash alone.
            let by_hash = Offer {
                hash: plans::hash_of(&key),
                ..offer
            };
            let sent = Arc::new(SentPlan {
                hash: by_hash.hash.clone(),
                full: Message::Plan(Offer {
                    plan: bytes,
                    ..by_hash.clone()
                })
                .encode(),
            });
            let by_hash = Message::Plan(by_hash).encode();
            if let Some(e) = lock(&c.runs).get_mut(&exec.id) {
                e.plan = Some(sent.clone());
            }
            for peer in peers.others() {
                let holds = plans::peer_holds(peer, &sent.hash);
                c.send_frame(peer, if holds { &by_hash } else { &sent.full })?;
            }
            Ok(())
        });
        if let Err(e) = sent {
            abort_everywhere(c, &peers, &exec.id);
            run.give_up(format!(
                "the execution could not be sent to every shard: {e:#}"
            ));
        }
    });
    Ok(())
}

/// Initiator: peer `from` was offered the plan by hash but does not hold it.
pub fn on_need_plan(c: &Cluster, from: &str, exec: &str) {
    plans::peer_forgot(from);
    let sent = lock(&c.runs).get(exec).and_then(|e| e.plan.clone());
    if let Some(sent) = sent {
        let _ = c.send_frame(from, &sent.full);
    }
}

/// When the initiator's run ends: it leaves the table, then `then` runs; but `then`
/// (a stream batch's acknowledgement) waits until every shard finished its part, so a
/// last stage still running elsewhere is not taken for done.
fn finish_here(then: Option<launch::Then>, peers_of: Weak<ClusterPeers>) -> launch::Then {
    Box::new(move |exec: &Execution| {
        let (aborted, complete) = {
            let mut st = exec.state();
            st.shards_completed += 1;
            let all = peers_of.upgrade().map_or(0, |p| p.shards().len());
            (
                st.status == crate::engine::execution::Status::Aborted,
                st.shards_completed >= all,
            )
        };
        let Some(c) = cluster() else {
            if let Some(then) = then {
                then(exec);
            }
            return;
        };
        if aborted {
            // Given up here (a silent or restarted shard): the others stop too.
            if let Some(peers) = peers_of.upgrade() {
                abort_everywhere(c, &peers, &exec.id);
            }
        }
        match then {
            Some(then) if !aborted && !complete => c.wait_for_done(&exec.id, then),
            then => {
                c.forget(&exec.id);
                if let Some(then) = then {
                    then(exec);
                }
            }
        }
    })
}

fn abort_everywhere(c: &Cluster, peers: &ClusterPeers, exec: &str) {
    let message = Message::Abort {
        exec: exec.to_string(),
        why: "the execution was aborted on the shard that started it".into(),
    };
    // A shard it does not reach ends its part by its idle watch.
    let _ = c.send_each(peers.others(), message);
}

/// Initiator: shard `from` holds the plan. When every shard does, everyone starts.
pub fn on_received(c: &Cluster, exec: &str, from: &str) {
    let go = {
        let mut runs = lock(&c.runs);
        let Some(e) = runs.get_mut(exec) else { return };
        e.received.insert(from.to_string());
        e.seen = std::time::Instant::now();
        if let Some(sent) = &e.plan {
            plans::peer_received(from, &sent.hash);
        }
        e.run.execution().state().shards_received = e.received.len() + 1;
        let all = e.peers.others().all(|p| e.received.contains(p));
        if all && !e.started {
            e.started = true;
            Some((e.run.clone(), e.peers.clone()))
        } else {
            None
        }
    };
    if let Some((run, peers)) = go {
        let message = Message::Run {
            exec: exec.to_string(),
        };
        if let Err(e) = c.send_each(peers.others(), message) {
            abort_everywhere(c, &peers, exec);
            run.give_up(format!("{e:#}"));
            return;
        }
        run.spawn();
    }
}

/// Initiator: shard `from` refused the plan; nobody ran anything yet.
pub fn on_refused(c: &Cluster, exec: &str, from: &str, why: &str) {
    let Some((run, peers)) = lock(&c.runs)
        .get(exec)
        .map(|e| (e.run.clone(), e.peers.clone()))
    else {
        return;
    };
    abort_everywhere(c, &peers, exec);
    run.give_up(format!("shard {from} refused the execution: {why}"));
}

/// Peer: a plan from the initiator. It is decoded and compiled on the pool (a Python
/// plan takes the GIL), then this shard answers RECEIVED or REFUSED.
pub fn on_plan(c: &'static Cluster, from: String, offer: Offer) {
    // A plan sent again in full replaces the offer that waited for its bytes.
    lock(&c.waiting).remove(&offer.exec);
    globals().pool.submit(move || answer(c, &from, offer));
}

/// Prepares the run of `offer` and answers the initiator `from`; a plan whose guest
/// this shard lacks waits for the bytes instead.
fn answer(c: &Cluster, from: &str, offer: Offer) {
    let exec = offer.exec.clone();
    let answer = match prepare(c, offer.clone()) {
        Ok(()) => Message::Received { exec },
        Err(e) if e.chain().any(|c| c.is::<plans::Missing>()) => {
            lock(&c.waiting).insert(exec.clone(), offer);
            Message::NeedPlan { exec }
        }
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<guests::Missing>()) {
            Some(missing) => {
                let ask = Message::NeedGuest {
                    exec: exec.clone(),
                    name: missing.name.clone(),
                    hash: missing.hash.clone(),
                };
                lock(&c.waiting).insert(exec, offer);
                ask
            }
            None => Message::Refused {
                exec,
                why: format!("{e:#}"),
            },
        },
    };
    // The initiator may be gone; it then ends the run by its own idle watch.
    let _ = c.send(from, answer);
}

/// Initiator: peer `from` lacks the plan's guest; it gets the bytes (or a refusal, if
/// this shard no longer has them).
pub fn on_need_guest(c: &Cluster, from: &str, exec: String, name: String, hash: String) {
    match guests::bytes_of(&name, &hash) {
        Some(bytes) => {
            let message = Message::Guest {
                exec,
                name,
                hash,
                bytes: bytes.to_vec(),
            };
            let _ = c.send(from, message);
        }
        None => on_refused(
            c,
            &exec,
            from,
            &format!("guest '{name}' changed on this shard while the run started"),
        ),
    }
}

/// Peer: the bytes of the guest a waiting plan needs; compiled on the pool, then the
/// plan is prepared again.
pub fn on_guest(
    c: &'static Cluster,
    from: String,
    exec: String,
    name: String,
    hash: String,
    bytes: Vec<u8>,
) {
    let Some(offer) = lock(&c.waiting).remove(&exec) else {
        return;
    };
    globals().pool.submit(move || {
        let db = i32::try_from(offer.db).unwrap_or(0);
        match guests::receive(&name, &hash, bytes, RunAs::new(&offer.user, db)) {
            Ok(()) => answer(c, &from, offer),
            Err(e) => {
                let _ = c.send(
                    &from,
                    Message::Refused {
                        exec,
                        why: format!("compiling guest '{name}': {e:#}"),
                    },
                );
            }
        }
    });
}

fn prepare(c: &Cluster, offer: Offer) -> Result<()> {
    let Offer {
        exec: id,
        plan: bytes,
        hash,
        shards,
        initiator,
        user,
        db,
        topology,
        registration,
    } = offer;
    let id = id.as_str();
    if globals().topology().fingerprint() != topology {
        // The timer may not have caught up yet: read the topology now.
        let ctx = lock::context();
        super::refresh_topology(&ctx);
        lock::release_slice();
        if globals().topology().fingerprint() != topology {
            bail!(
                "shard {} sees another cluster topology than the shard that started the \
                 run (are slots moving?); try again",
                c.me
            );
        }
    }
    let me = shards
        .iter()
        .position(|s| *s == c.me)
        .ok_or_else(|| anyhow!("shard {} is not among the execution's shards", c.me))?;
    if initiator >= shards.len() {
        bail!("an execution whose initiator is not among its shards");
    }
    let (plan, reader) = if registration.is_empty() {
        let plan = Arc::new(received_plan(bytes, &hash)?);
        let reader = reader_of(&plan)?;
        (plan, reader)
    } else {
        // Stage 1 reads the event on the shard it happened on: nothing here.
        let reg = globals().registrations.get(&registration).ok_or_else(|| {
            anyhow!(
                "registration {registration} does not exist on shard {}",
                c.me
            )
        })?;
        let none: Box<dyn Reader> = Box::new(VecReader::new(Vec::new()));
        (reg.plan.clone(), none)
    };
    let profile = config::get(Key::ProfileExecutions) == 1;
    let stages = plan.compile(profile, false)?;
    let db = i32::try_from(db).map_err(|_| anyhow!("a bad database number"))?;
    let exec = globals()
        .registry
        .adopt(id, plan.reports(), RunAs::new(&user, db));
    let peers = Arc::new(ClusterPeers::new(
        id,
        shards,
        me,
        initiator,
        globals().topology(),
    ));
    let run: Arc<Run> = launch::run_with(
        Launch {
            exec,
            plan,
            reader,
            stages,
            inline: false,
            then: None,
        },
        peers.clone(),
    );
    let initiator_id = peers.initiator_id().to_string();
    run.then(Box::new(move |exec: &Execution| {
        if let Some(c) = cluster() {
            c.forget(&exec.id);
            let aborted = {
                let st = exec.state();
                (st.status == crate::engine::execution::Status::Aborted)
                    .then(|| st.errors.last().cloned().unwrap_or_default())
            };
            // A part that ended aborted (its shard's slots moving, say) aborts the whole
            // execution: the initiator must not take it for done.
            let message = match aborted {
                Some(why) => Message::Abort {
                    exec: exec.id.clone(),
                    why: format!("the execution was aborted on shard {}: {why}", c.me),
                },
                None => Message::Done {
                    exec: exec.id.clone(),
                },
            };
            let _ = c.send(&initiator_id, message);
        }
    }));
    c.insert(id, run, peers);
    Ok(())
}

/// A plan that travelled: its bytes, or its hash alone when this shard holds them.
fn received_plan(bytes: Vec<u8>, hash: &str) -> Result<Plan> {
    let bytes = if bytes.is_empty() {
        plans::held(hash).ok_or(plans::Missing)?
    } else {
        // Kept under the hash the initiator gave: a later offer of the same plan (its
        // steps' shown texts aside) comes by hash alone.
        let bytes = Arc::new(bytes);
        plans::hold(hash, bytes.clone());
        bytes
    };
    Plan::decode(&bytes, &resolve).context("receiving the plan")
}

/// The host of a plan's code on this shard.
fn resolve(host: &str, reference: &Value) -> Result<Arc<dyn Host>> {
    match host {
        "python" if !globals().python => {
            bail!(
                "Python is disabled on shard {} (PythonEnabled 0)",
                globals().shard_id
            )
        }
        #[cfg(feature = "python")]
        "python" => {
            let traceback = config::get(Key::PythonAttemptTraceback) == 1;
            PythonHost::resolve(reference, traceback)
        }
        "wasm" => {
            let (Some(Value::Str(name)), Some(Value::Str(hash))) =
                (reference.get("guest"), reference.get("hash"))
            else {
                bail!("a guest plan without its guest's name and hash");
            };
            // Installed here or received before, by name and content; missing, the
            // caller asks the initiator for the bytes.
            Ok(WasmHost::of(guests::find(name, hash)?))
        }
        other => bail!("a plan of an unknown host '{other}'"),
    }
}
