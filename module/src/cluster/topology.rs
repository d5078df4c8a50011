//! Which shard owns which slots: the masters of a Redis Cluster, read from CLUSTER SLOTS.
//!
//! A shard is a master that owns slots, named by its 40-hex node id. CLUSTER SLOTS lists
//! each range with its master first (`[start, end, [ip, port, id, ...], replicas...]`;
//! 7.x adds a fourth element of networking metadata to each node entry, ignored here).
//! Nothing here talks to Redis: the reply comes in as a Value.

use anyhow::{anyhow, bail, Result};

use super::slots::{tag_of_slot, SLOTS};
use crate::engine::value::Value;

/// A master and the slot ranges it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub ip: String,
    pub port: u16,
    /// Inclusive ranges, in order.
    pub ranges: Vec<(u16, u16)>,
}

impl Shard {
    pub fn owns(&self, slot: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= slot && slot <= b)
    }

    /// The lowest and highest slot it owns (RG.INFOCLUSTER's minHslot / maxHslot).
    pub fn span(&self) -> Option<(u16, u16)> {
        let min = self.ranges.iter().map(|r| r.0).min()?;
        let max = self.ranges.iter().map(|r| r.1).max()?;
        Some((min, max))
    }
}

/// The masters as this shard sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// This node's id.
    pub me: String,
    /// The masters that own slots, by id.
    pub shards: Vec<Shard>,
    /// Masters that own no slot (yet): a node just joined, or one all slots moved
    /// away from. They take no part in runs, but every registration reaches them.
    pub spare: Vec<Shard>,
}

impl Topology {
    /// A Redis that is not a cluster: this shard alone (no slots to own).
    pub fn standalone(me: &str) -> Topology {
        Topology {
            me: me.to_string(),
            shards: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The topology of a CLUSTER SLOTS reply, as node `me` sees it.
    pub fn from_cluster_slots(me: &str, reply: &Value) -> Result<Topology> {
        let Value::List(ranges) = reply else {
            bail!("CLUSTER SLOTS did not reply an array");
        };
        let mut shards: Vec<Shard> = Vec::new();
        for range in ranges {
            let Value::List(items) = range else {
                bail!("a CLUSTER SLOTS range is not an array");
            };
            let [start, end, master, ..] = items.as_slice() else {
                bail!("a CLUSTER SLOTS range without its master");
            };
            let (start, end) = (slot(start)?, slot(end)?);
            if start > end {
                bail!("a CLUSTER SLOTS range ends before it starts");
            }
            let Value::List(node) = master else {
                bail!("a CLUSTER SLOTS node is not an array");
            };
            let [ip, port, id, ..] = node.as_slice() else {
                bail!("a CLUSTER SLOTS node without ip, port and id");
            };
            let id = text(id)?;
            let port = match port {
                Value::Int(p) => u16::try_from(*p).map_err(|_| anyhow!("a bad port"))?,
                _ => bail!("a CLUSTER SLOTS port is not an integer"),
            };
            match shards.iter_mut().find(|s| s.id == id) {
                Some(s) => s.ranges.push((start, end)),
                None => shards.push(Shard {
                    id: id.to_string(),
                    ip: text(ip)?.to_string(),
                    port,
                    ranges: vec![(start, end)],
                }),
            }
        }
        for s in &mut shards {
            s.ranges.sort_unstable();
        }
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Topology {
            me: me.to_string(),
            shards,
            spare: Vec::new(),
        })
    }

    /// Adds the masters CLUSTER NODES lists that own no slot (healthy ones: not failing,
    /// not in handshake, with an address).
    pub fn with_spare(mut self, cluster_nodes: &str) -> Topology {
        let mut spare = Vec::new();
        for line in cluster_nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, address, flags, _master, _ping, _pong, _epoch, _link, slots @ ..] =
                fields.as_slice()
            else {
                continue;
            };
            let flags: Vec<&str> = flags.split(',').collect();
            let healthy = flags.contains(&"master")
                && !flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "fail?" | "handshake" | "noaddr"));
            // Importing or migrating marks ([slot->-id]) are not slots owned.
            let owns = slots.iter().any(|s| !s.starts_with('['));
            if !healthy || owns || self.shards.iter().any(|s| s.id == *id) {
                continue;
            }
            let host = address.split(['@', ',']).next().unwrap_or("");
            let Some((ip, port)) = host.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse() else { continue };
            spare.push(Shard {
                id: id.to_string(),
                ip: ip.to_string(),
                port,
                ranges: Vec::new(),
            });
        }
        spare.sort_by(|a, b| a.id.cmp(&b.id));
        self.spare = spare;
        self
    }

    /// Every master: those owning slots, then the spare ones.
    pub fn members(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().chain(&self.spare)
    }

    /// A short digest of the masters and their slots: shards that agree on it route
    /// every key to the same master.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for s in &self.shards {
            h.update(s.id.as_bytes());
            for (a, b) in &s.ranges {
                h.update(format!(":{a}-{b}").as_bytes());
            }
            h.update(b";");
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether there are masters to share the work with (a cluster with slots assigned).
    pub fn is_cluster(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The master owning `slot`.
    pub fn owner(&self, slot: u16) -> Option<&Shard> {
        self.shards.iter().find(|s| s.owns(slot))
    }

    /// This node as a master, if it owns slots.
    pub fn mine(&self) -> Option<&Shard> {
        self.shards.iter().find(|s| s.id == self.me)
    }

    /// A tag whose keys hash to a slot this shard owns (the first one; slot 0 when it
    /// owns none), without braces: recipes write `'{%s}' % hashtag()`.
    pub fn hashtag(&self) -> String {
        let slot = self.mine().and_then(Shard::span).map_or(0, |(min, _)| min);
        tag_of_slot(slot)
    }

    /// Whether every slot has a master.
    pub fn covers_all_slots(&self) -> bool {
        let mut ranges: Vec<(u16, u16)> = self
            .shards
            .iter()
            .flat_map(|s| s.ranges.iter().copied())
            .collect();
        ranges.sort_unstable();
        let mut next = 0u32;
        for (a, b) in ranges {
            if a as u32 > next {
                return false;
            }
            next = next.max(b as u32 + 1);
        }
        next == SLOTS as u32
    }
}

fn slot(v: &Value) -> Result<u16> {
    match v {
        Value::Int(n) if (0..SLOTS as i64).contains(n) => Ok(*n as u16),
        _ => bail!("a CLUSTER SLOTS slot is not between 0 and 16383"),
    }
}

fn text(v: &Value) -> Result<&str> {
    match v {
        Value::Str(s) | Value::Status(s) => Ok(s),
        _ => bail!("a CLUSTER SLOTS field is not a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::slots::key_slot;

    fn node(ip: &str, port: i64, id: &str) -> Value {
        // 7.x: a fourth element of networking metadata.
        Value::List(vec![
            Value::str(ip),
            Value::Int(port),
            Value::str(id),
            Value::List(vec![]),
        ])
    }

    fn range(a: i64, b: i64, master: Value, replicas: Vec<Value>) -> Value {
        let mut v = vec![Value::Int(a), Value::Int(b), master];
        v.extend(replicas);
        Value::List(v)
    }

    fn three() -> Value {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        Value::List(vec![
            range(10923, 16383, node("127.0.0.1", 7003, &c), vec![]),
            range(
                0,
                5460,
                node("127.0.0.1", 7001, &a),
                vec![node("127.0.0.1", 7004, "r")],
            ),
            range(5461, 10922, node("127.0.0.1", 7002, &b), vec![]),
        ])
    }

    #[test]
    fn masters_by_id_with_their_ranges() {
        let me = "b".repeat(40);
        let t = Topology::from_cluster_slots(&me, &three()).unwrap();
        assert!(t.is_cluster() && t.covers_all_slots());
        let ids: Vec<&str> = t.shards.iter().map(|s| &s.id[..1]).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(t.shards[0].ranges, [(0, 5460)]);
        assert_eq!(t.shards[0].port, 7001);
        assert_eq!(t.mine().map(|s| s.port), Some(7002));
        assert_eq!(t.owner(5461).map(|s| s.port), Some(7002));
        assert_eq!(t.owner(16383).map(|s| s.port), Some(7003));
        // The tag hashes to a slot this shard owns.
        let tag = t.hashtag();
        assert!(!tag.contains('{'), "{tag}");
        assert!(t
            .mine()
            .unwrap()
            .owns(key_slot(format!("{{{tag}}}x").as_bytes())));
    }

    #[test]
    fn a_master_with_several_ranges_is_one_shard() {
        let a = "a".repeat(40);
        let reply = Value::List(vec![
            range(100, 200, node("h", 1, &a), vec![]),
            range(0, 99, node("h", 1, &a), vec![]),
        ]);
        let t = Topology::from_cluster_slots("x", &reply).unwrap();
        assert_eq!(t.shards.len(), 1);
        assert_eq!(t.shards[0].ranges, [(0, 99), (100, 200)]);
        assert_eq!(t.shards[0].span(), Some((0, 200)));
        assert!(!t.covers_all_slots());
        assert!(t.mine().is_none());
    }

    #[test]
    fn a_cluster_without_slots_is_not_a_cluster_yet() {
        let t = Topology::from_cluster_slots("me", &Value::List(vec![])).unwrap();
        assert!(!t.is_cluster());
        assert_eq!(t, Topology::standalone("me"));
    }

    #[test]
    fn bad_replies_are_errors() {
        for bad in [
            Value::Nil,
            Value::List(vec![Value::Int(1)]),
            Value::List(vec![range(5, 1, node("h", 1, "a"), vec![])]),
            Value::List(vec![range(0, 20000, node("h", 1, "a"), vec![])]),
            Value::List(vec![range(
                0,
                1,
                Value::List(vec![Value::str("h")]),
                vec![],
            )]),
            Value::List(vec![range(0, 1, node("h", 70000, "a"), vec![])]),
        ] {
            assert!(Topology::from_cluster_slots("me", &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spare_masters_are_the_healthy_ones_without_slots() {
        let nodes = "\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191
bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 8192-16383
ccc 127.0.0.1:7002@17002,host master - 0 0 0 connected
ddd 127.0.0.1:7003@17003 slave aaa 0 0 1 connected
eee 127.0.0.1:7004@17004 master,fail - 0 0 0 disconnected
fff :0@0 master,noaddr - 0 0 0 disconnected
ggg 127.0.0.1:7006@17006 master - 0 0 3 connected [5-<-aaa]
";
        let slots = |id: &str, port: i64, a: i64, b: i64| {
            Value::List(vec![
                Value::Int(a),
                Value::Int(b),
                node("127.0.0.1", port, id),
            ])
        };
        let t = Topology::from_cluster_slots(
            "aaa",
            &Value::List(vec![
                slots("aaa", 7000, 0, 8191),
                slots("bbb", 7001, 8192, 16383),
            ]),
        )
        .unwrap()
        .with_spare(nodes);
        let spare: Vec<(&str, u16)> = t.spare.iter().map(|s| (s.id.as_str(), s.port)).collect();
        assert_eq!(spare, vec![("ccc", 7002), ("ggg", 7006)]);
        assert_eq!(t.members().count(), 4);
        // Spare masters take no part in runs: the fingerprint is the slots' alone.
        let without = Topology {
            spare: Vec::new(),
            ..t.clone()
        };
        assert_eq!(t.fingerprint(), without.fingerprint());
    }
}
