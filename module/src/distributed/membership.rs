//! What this master knows of the others: the topology (read from CLUSTER SLOTS), the
//! links kept to match it, and the credentials they use. An unchanged topology changes
//! nothing; a changed one ends the distributed runs in flight.

use std::sync::Mutex;

use redis_module::Context;

use super::cluster;
use crate::cluster::link::Credentials;
use crate::config;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::call::call;
use crate::redis::cluster::read_topology;

/// Reads the links' credentials and the topology now (at load, on the timer, on
/// RG.REFRESHCLUSTER). (Main thread.)
pub fn refresh(ctx: &Context) {
    if let Some(c) = cluster() {
        let creds = credentials(ctx);
        *PEER_USER.lock().unwrap_or_else(|e| e.into_inner()) =
            creds.user.clone().unwrap_or_else(|| "default".into());
        c.link.set_credentials(creds);
    }
    refresh_topology(ctx);
}

/// Reads the topology now. A change is logged, ends the distributed runs in flight and
/// moves the links to the new masters. (Main thread, or the Redis lock held.)
pub fn refresh_topology(ctx: &Context) {
    REPLICA.store(
        ctx.get_flags().contains(redis_module::ContextFlags::SLAVE),
        std::sync::atomic::Ordering::Release,
    );
    let g = globals();
    let t = match read_topology(ctx, &g.shard_id) {
        Ok(t) => t,
        Err(e) => {
            ctx.log_warning(&format!("gears: reading the cluster topology: {e:#}"));
            return;
        }
    };
    let masters = t.shards.len();
    let mine = t.mine().map_or(0, |s| s.ranges.len());
    let spare = t.spare.len();
    let peers: Vec<(String, String, u16)> = t
        .members()
        .map(|s| (s.id.clone(), s.ip.clone(), s.port))
        .collect();
    let before = g.topology();
    let slots_moved = before.is_cluster() && before.fingerprint() != t.fingerprint();
    if !g.set_topology(t) {
        return;
    }
    ctx.log_notice(&format!(
        "gears: cluster topology: {masters} masters own slots ({spare} own none); this shard \
         owns {mine} ranges"
    ));
    if slots_moved {
        super::topology_changed();
    }
    if let Some(c) = cluster() {
        c.link.sync_peers(&peers);
    }
}

/// Whether this node is a replica, as of the last topology read: a replica takes no
/// part in changes and snapshots (its master replicates them to it), though for a second
/// after it is made one CLUSTER NODES may still list it as a master.
static REPLICA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn is_replica() -> bool {
    REPLICA.load(std::sync::atomic::Ordering::Acquire)
}

/// The credentials of the links: ClusterUser / ClusterPassword when given at load, else
/// those replication uses (masteruser / masterauth): masters authenticate to each other
/// as replicas do.
fn credentials(ctx: &Context) -> Credentials {
    if let Some(user) = config::secret(config::CLUSTER_USER) {
        return Credentials {
            user: Some(user),
            password: config::secret(config::CLUSTER_PASSWORD),
        };
    }
    let get = |name: &str| match call(ctx, &[b"CONFIG", b"GET", name.as_bytes()]) {
        Value::List(items) => match items.get(1) {
            Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Credentials {
        user: get("masteruser"),
        password: get("masterauth"),
    }
}

/// The ACL user peers connect as: ClusterUser, else masteruser, else `default` (read with
/// the topology, so a frame does not pay for CONFIG GET).
static PEER_USER: Mutex<String> = Mutex::new(String::new());

/// Whether `user` is the one peers connect as.
pub fn is_peer_user(user: &str) -> bool {
    let peer = PEER_USER.lock().unwrap_or_else(|e| e.into_inner());
    !peer.is_empty() && *peer == user
}
