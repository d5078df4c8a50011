//! What Redis Cluster tells this node: its id, and the masters' slots (CLUSTER SLOTS).

use redis_module::{raw, Context};

use super::call::call;
use crate::cluster::topology::Topology;
use crate::engine::value::Value;

/// The length of a node id (REDISMODULE_NODE_ID_LEN).
const NODE_ID_LEN: usize = 40;

/// This node's 40-hex cluster id, when Redis runs as a cluster node (main thread).
pub fn my_id(ctx: &Context) -> Option<String> {
    if !super::capabilities::get().cluster_api {
        // Asked as a client would: an error when cluster mode is off.
        return match call(ctx, &[b"CLUSTER", b"MYID"]) {
            Value::Str(id) if id.len() == NODE_ID_LEN => Some(id),
            Value::Bytes(id) if id.len() == NODE_ID_LEN => String::from_utf8(id).ok(),
            _ => None,
        };
    }
    // SAFETY: the API table is filled before OnLoad (see redis/mod.rs); checked present
    // by capabilities.
    let get = unsafe { raw::RedisModule_GetMyClusterID }?;
    // SAFETY: a plain getter; it returns NULL when cluster mode is off, else a pointer to
    // the node's id that Redis keeps for the life of the process.
    let id = unsafe { get() };
    if id.is_null() {
        return None;
    }
    // SAFETY: the id is REDISMODULE_NODE_ID_LEN (40) bytes and NOT NUL-terminated
    // (module.c); exactly those bytes are copied out at once.
    let bytes = unsafe { std::slice::from_raw_parts(id.cast::<u8>(), NODE_ID_LEN) };
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// The masters and their slots, as this node sees them now (main thread or lock held).
pub fn read_topology(ctx: &Context, me: &str) -> anyhow::Result<Topology> {
    let topology = Topology::from_cluster_slots(me, &call(ctx, &[b"CLUSTER", b"SLOTS"]))?;
    Ok(match call(ctx, &[b"CLUSTER", b"NODES"]) {
        Value::Str(nodes) => topology.with_spare(&nodes),
        Value::Bytes(nodes) => topology.with_spare(&String::from_utf8_lossy(&nodes)),
        _ => topology,
    })
}
