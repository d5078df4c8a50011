//! Bringing a master's registrations up to date: one that joined the cluster after they
//! were made, or came back from an old RDB file, or missed a change while cut off.
//!
//! Every few seconds each master asks the others for their registrations' version (the
//! number of the last change, `Registrations::version`) and a digest of the set. A master
//! that sees a peer with another set and a lower version (equal versions: the lower node
//! id wins) sends it its whole set as a SNAPSHOT: every session's source and every
//! guest's bytes with their ids, what an RDB file holds. The peer makes what differs: it
//! stages the sessions and guests it lacks or has otherwise, removes those the snapshot
//! lacks, replicates each to its replicas, and takes the snapshot's version. What is the
//! same is left alone, so a stream registration goes on reading where it was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use redis_module::logging::{log, RedisLogLevel};
use sha2::{Digest, Sha256};

use super::changes::{self, Change};
use super::{ask, cluster, lock, Cluster};
use crate::cluster::messages::Message;
use crate::engine::codec;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::persist;
use crate::redis::lock as redis_lock;
use crate::wasm::guests;

/// The question every master answers with its (version, digest).
pub const STATE: &str = "registrations-state";

/// The CHANGE step that carries a whole set of registrations to a master behind.
pub const SNAPSHOT: &str = "snapshot";

/// How often masters compare their sets.
const EVERY: Duration = Duration::from_secs(2);

static LAST: Mutex<Option<Instant>> = Mutex::new(None);
static ASKING: AtomicBool = AtomicBool::new(false);

/// This master's registrations as changes that re-create them (sessions by id, guests
/// by name). `light`: a guest's bytes are given as their content hash (what the digest
/// needs, without copying or hashing the bytes every few seconds).
pub(super) fn items(light: bool) -> Vec<Change> {
    let mut out: Vec<Change> = persist::sessions_to_save()
        .into_iter()
        .map(|(sid, desc, code, ids, owner)| Change::Session {
            sid,
            desc,
            code,
            user: owner.user.to_string(),
            db: owner.db,
            ids,
            replace_with: None,
        })
        .collect();
    out.extend(guests::list().into_iter().map(|p| Change::Guest {
        name: p.name.clone(),
        desc: p.desc.clone(),
        bytes: if light {
            p.hash.as_bytes().to_vec()
        } else {
            p.bytes.as_ref().clone()
        },
        ids: guests::ids_of(&p),
        user: p.owner.user.to_string(),
        db: p.owner.db,
    }));
    out
}

/// An item as `items(true)` gives it: a guest's bytes replaced by their content hash
/// (sha256 in hex, as a guest's `hash`).
fn light(item: &Change) -> Change {
    match item {
        Change::Guest { bytes, .. } => {
            let hash: String = Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let mut light = item.clone();
            if let Change::Guest { bytes, .. } = &mut light {
                *bytes = hash.into_bytes();
            }
            light
        }
        other => other.clone(),
    }
}

/// What identifies an item: a session's id or a guest's name.
fn key(item: &Change) -> Option<(bool, &str)> {
    match item {
        Change::Session { sid, .. } => Some((true, sid)),
        Change::Guest { name, .. } => Some((false, name)),
        _ => None,
    }
}

fn digest(items: &[Change]) -> String {
    let mut h = Sha256::new();
    let mut encoded: Vec<Vec<u8>> = items.iter().map(Change::encode).collect();
    encoded.sort();
    for e in encoded {
        h.update((e.len() as u64).to_be_bytes());
        h.update(&e);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This master's answer to [`STATE`]: `[version, digest]`; a replica's is nil (it
/// gets its set from its master).
pub fn state() -> Value {
    if super::membership::is_replica() {
        return Value::Nil;
    }
    Value::List(vec![
        Value::Int(globals().registrations.version() as i64),
        Value::Str(digest(&items(true))),
    ])
}

fn parse_state(v: &Value) -> Option<(u64, String)> {
    match v {
        Value::List(items) => match items.as_slice() {
            [Value::Int(version), Value::Str(digest)] => Some((*version as u64, digest.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a set with (`version`, id `a`) is newer than one with (`other`, id `b`).
fn newer(version: u64, a: &str, other: u64, b: &str) -> bool {
    version > other || (version == other && a < b)
}

/// The dispatcher's tick: every [`EVERY`], compares this master's set with the others'.
pub fn tick() {
    let Some(c) = cluster() else { return };
    if super::membership::is_replica() || !globals().topology().members().any(|m| m.id == c.me) {
        // A replica: its set is its master's.
        return;
    }
    {
        let mut last = lock(&LAST);
        if last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    if ASKING.swap(true, Ordering::AcqRel) {
        return;
    }
    ask::ask_every_master(
        STATE,
        "",
        Box::new(move |answers| {
            ASKING.store(false, Ordering::Release);
            compare(c, answers);
        }),
    );
}

fn compare(c: &'static Cluster, answers: Vec<(String, Value)>) {
    let Some((version, mine)) = answers.first().and_then(|(_, v)| parse_state(v)) else {
        return;
    };
    let behind: Vec<String> = answers
        .iter()
        .skip(1)
        .filter_map(|(peer, v)| {
            let (theirs, digest) = parse_state(v)?;
            (digest != mine && newer(version, &c.me, theirs, peer)).then(|| peer.clone())
        })
        .collect();
    if behind.is_empty() {
        return;
    }
    // Encoding reads every guest's bytes: on the pool, not on the dispatcher.
    globals().pool.submit(move || {
        let items = items(false);
        let snapshot = encode(version, &items);
        for peer in behind {
            log(
                RedisLogLevel::Notice,
                format!("gears: shard {peer} has an older set of registrations: sending ours (version {version})"),
            );
            let _ = c.send(
                &peer,
                Message::Change {
                    exec: format!("{}-sync-{version}", c.me),
                    step: SNAPSHOT.into(),
                    payload: snapshot.clone(),
                },
            );
        }
    });
}

fn encode(version: u64, items: &[Change]) -> Vec<u8> {
    codec::encode_one(&Value::List(vec![
        Value::Int(version as i64),
        Value::List(items.iter().map(|i| Value::Bytes(i.encode())).collect()),
    ]))
}

fn decode(bytes: &[u8]) -> Result<(u64, Vec<Change>)> {
    let Value::List(fields) = codec::decode(bytes)? else {
        bail!("a snapshot that is not a list");
    };
    let [Value::Int(version), Value::List(items)] = fields.as_slice() else {
        bail!("a snapshot without its version and items");
    };
    let items = items
        .iter()
        .map(|i| match i {
            Value::Bytes(b) => Change::decode(b),
            _ => Err(anyhow!("a snapshot item that is not bytes")),
        })
        .collect::<Result<Vec<_>>>()?;
    if items.iter().any(|i| key(i).is_none()) {
        bail!("a snapshot item that is neither a session nor a guest");
    }
    Ok((*version as u64, items))
}

/// Peer: a snapshot from `from` (on the pool). Applied when it is newer than this
/// master's set.
pub fn on_snapshot(from: &str, payload: &[u8]) {
    if super::membership::is_replica() {
        return;
    }
    // One snapshot at a time: two masters may send one at once, and both would stage
    // the same sessions.
    static APPLYING: Mutex<()> = Mutex::new(());
    let _one = lock(&APPLYING);
    let me = globals().shard_id.clone();
    let (version, theirs) = match decode(payload) {
        Ok(s) => s,
        Err(e) => {
            log(
                RedisLogLevel::Warning,
                format!("gears: a bad snapshot of registrations from shard {from}: {e:#}"),
            );
            return;
        }
    };
    let ours = items(false);
    let theirs_light: Vec<Change> = theirs.iter().map(light).collect();
    if digest(&items(true)) == digest(&theirs_light)
        || !newer(version, from, globals().registrations.version(), &me)
    {
        globals().registrations.advance(version);
        return;
    }
    // Staged first (compiling, re-running scripts): what fails is logged and left out.
    let mut ready = Vec::new();
    for item in theirs.iter().filter(|i| !ours.contains(i)) {
        let name = key(item).map(|(_, n)| n.to_string()).unwrap_or_default();
        match changes::stage(item.clone()) {
            Ok(r) => ready.push(r),
            Err(e) => log(
                RedisLogLevel::Warning,
                format!("gears: re-creating {name} from shard {from}'s registrations: {e}"),
            ),
        }
    }
    let gone: Vec<Change> = ours
        .into_iter()
        .filter(|o| !theirs.iter().any(|t| key(t) == key(o)))
        .collect();
    let ctx = redis_lock::context();
    for item in &gone {
        let removal = match item {
            Change::Session { ids, .. } => ids
                .iter()
                .map(|(_, id)| Change::Unregister { id: id.clone() })
                .collect(),
            Change::Guest { name, .. } if guests::get(name).is_some() => {
                vec![Change::DeleteGuest { name: name.clone() }]
            }
            _ => Vec::new(),
        };
        for change in removal {
            if let Ok(r) = changes::check_here(change) {
                r.commit(&ctx, version);
            }
        }
    }
    let made = ready.len();
    for r in ready {
        r.commit(&ctx, version);
    }
    globals().registrations.advance(version);
    redis_lock::release_slice();
    log(
        RedisLogLevel::Notice,
        format!(
            "gears: registrations brought up to date from shard {from} (version {version}): \
             {made} sessions or guests made, {} removed",
            gone.len()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_read_back_and_digests_ignore_order() {
        let a = Change::Unregister { id: "x".into() };
        let s = Change::Session {
            sid: "s".into(),
            desc: None,
            code: "GB().register()".into(),
            user: "default".into(),
            db: 0,
            ids: vec![(0, "a-1".into())],
            replace_with: None,
        };
        let g = Change::Guest {
            name: "g".into(),
            desc: None,
            bytes: vec![1, 2],
            ids: vec!["a-2".into()],
            user: "default".into(),
            db: 0,
        };
        let (v, items) = decode(&encode(7, &[s.clone(), g.clone()])).unwrap();
        assert_eq!((v, items), (7, vec![s.clone(), g.clone()]));
        assert_eq!(
            digest(&[s.clone(), g.clone()]),
            digest(&[g.clone(), s.clone()])
        );
        assert_ne!(digest(&[s.clone()]), digest(&[s.clone(), g.clone()]));
        // A guest is digested by its content hash, as RG.WASMLIST shows it.
        let Change::Guest { bytes, .. } = light(&g) else {
            panic!("not a guest");
        };
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "a12871fee210fb8619291eaea194581cbd2531e4b23759d225f6806923f63222"
        );
        assert_eq!(light(&s), s);
        // Only sessions and guests make a snapshot.
        assert!(decode(&encode(1, &[a])).is_err());
        assert!(decode(b"\x01").is_err());
    }

    #[test]
    fn the_higher_version_wins_and_ties_go_to_the_lower_id() {
        assert!(newer(3, "b", 2, "a"));
        assert!(!newer(2, "a", 3, "b"));
        assert!(newer(2, "a", 2, "b"));
        assert!(!newer(2, "b", 2, "a"));
    }
}
