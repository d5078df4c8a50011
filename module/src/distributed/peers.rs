//! The runner's view of the other shards of one distributed execution.

use std::sync::{Arc, Mutex};

use crate::cluster::messages::Message;
use crate::cluster::slots::key_slot;
use crate::cluster::topology::Topology;
use crate::engine::run::{Inbound, Peers};
use crate::engine::value::Value;

/// The error record of a record that cannot travel (as RedisGears 1.2 says it).
const NOT_DATA: &str = "Failed serializing record";

/// The shards of one execution, in the order every shard agrees on (the plan names
/// them), and the topology the run routes keys by.
pub struct ClusterPeers {
    exec: String,
    shards: Vec<String>,
    me: usize,
    initiator: usize,
    topology: Arc<Topology>,
    /// Why a batch could not be handed to the link (the run is then ended).
    failed: Mutex<Option<String>>,
}

impl ClusterPeers {
    pub fn new(
        exec: &str,
        shards: Vec<String>,
        me: usize,
        initiator: usize,
        topology: Arc<Topology>,
    ) -> ClusterPeers {
        ClusterPeers {
            exec: exec.to_string(),
            shards,
            me,
            initiator,
            topology,
            failed: Mutex::new(None),
        }
    }

    pub fn shards(&self) -> &[String] {
        &self.shards
    }

    pub fn initiator_id(&self) -> &str {
        &self.shards[self.initiator]
    }

    /// Whether shard `id` takes part.
    pub fn has(&self, id: &str) -> bool {
        self.shards.iter().any(|s| s == id)
    }

    /// The other shards.
    pub fn others(&self) -> impl Iterator<Item = &String> {
        let me = &self.shards[self.me];
        self.shards.iter().filter(move |s| *s != me)
    }

    pub fn send_failed(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Peers for ClusterPeers {
    fn count(&self) -> usize {
        self.shards.len()
    }
    fn me(&self) -> usize {
        self.me
    }
    fn initiator(&self) -> usize {
        self.initiator
    }
    fn owner(&self, key: &[u8]) -> usize {
        self.topology
            .owner(key_slot(key))
            .and_then(|s| self.shards.iter().position(|id| *id == s.id))
            .unwrap_or(self.initiator)
    }
    fn send(&self, to: usize, mut batch: Inbound) {
        let Some(c) = super::cluster() else { return };
        let Some(peer) = self.shards.get(to) else {
            return;
        };
        let mut failed = 0;
        batch.records.retain_mut(|r| {
            if !holds_host(r) {
                return true;
            }
            match travelling(r) {
                Some(v) => {
                    *r = v;
                    true
                }
                None => {
                    failed += 1;
                    false
                }
            }
        });
        batch
            .errors
            .extend(std::iter::repeat_n(NOT_DATA.to_string(), failed));
        let message = Message::Batch {
            exec: self.exec.clone(),
            batch,
        };
        if let Err(e) = c.send(peer, message) {
            let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            f.get_or_insert_with(|| format!("{e:#}"));
        }
    }
}

/// A record as it travels: data as itself; a host object as the data it holds, or None
/// when it is not data.
fn travelling(v: &Value) -> Option<Value> {
    Some(match v {
        Value::Host(h) => h.to_data()?,
        Value::List(items) => Value::List(items.iter().map(travelling).collect::<Option<_>>()?),
        Value::Map(pairs) => Value::Map(
            pairs
                .iter()
                .map(|(k, v)| Some((travelling(k)?, travelling(v)?)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Whether a record holds a host object anywhere (most records do not: no copy then).
fn holds_host(v: &Value) -> bool {
    match v {
        Value::Host(_) => true,
        Value::List(items) => items.iter().any(holds_host),
        Value::Map(pairs) => pairs.iter().any(|(k, v)| holds_host(k) || holds_host(v)),
        _ => false,
    }
}
