//! The cluster's commands: RG.INFOCLUSTER and RG.REFRESHCLUSTER, the timer that keeps
//! the topology current (Redis 7.0 raises no event when slots move), and the two
//! commands of the shard link, RG.HELLO and RG.INNERMSG, which only peers may send.

use std::time::Duration;

use redis_module::{Context, RedisString};

use super::{arity, text, Answer};
use crate::cluster::link::PROTOCOL;
use crate::distributed::{self, cluster, refresh};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::door;

/// How often the topology is read again.
const EVERY: Duration = Duration::from_secs(1);

/// Refuses a client that is not a peer.
fn only_peers(ctx: &Context) -> Result<(), String> {
    let user = door::command_user(ctx).unwrap_or_default();
    if !distributed::is_peer_user(&user) {
        return Err(
            "NOPERM this command is for the shards of the cluster only (they connect as masteruser)"
                .into(),
        );
    }
    Ok(())
}

/// Starts the timer that keeps the topology current (at load, on a cluster node).
pub fn watch(ctx: &Context) {
    ctx.create_timer(EVERY, on_tick, ());
}

fn on_tick(ctx: &Context, _: ()) {
    if std::panic::catch_unwind(|| refresh(ctx)).is_err() {
        ctx.log_warning("gears: reading the cluster topology panicked; it is tried again");
    }
    watch(ctx);
}

/// RG.REFRESHCLUSTER: reads the topology now (nothing changes when it did not).
pub fn refresh_cluster(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    if cluster().is_some() {
        refresh(ctx);
    }
    Ok(Answer::Reply(Value::Status("OK".into())))
}

/// RG.INFOCLUSTER: this shard and every master, in RedisGears 1.2's layout.
pub fn info_cluster(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    let topology = globals().topology();
    let Some(c) = cluster().filter(|_| topology.is_cluster()) else {
        return Ok(Answer::Reply(Value::Status("no cluster mode".into())));
    };
    let s = Value::str;
    let shards = topology
        .shards
        .iter()
        .map(|shard| {
            let (runid, pending) = if shard.id == c.me {
                (Some(c.link.incarnation().to_string()), 0)
            } else {
                c.link.peer_state(&shard.id).unwrap_or((None, 0))
            };
            let (min, max) = shard.span().unwrap_or((0, 0));
            Value::List(vec![
                s("id"),
                s(shard.id.as_str()),
                s("ip"),
                s(shard.ip.as_str()),
                s("port"),
                Value::Int(shard.port as i64),
                s("unixSocket"),
                s("None"),
                s("runid"),
                runid.map_or(Value::Nil, Value::Str),
                s("minHslot"),
                Value::Int(min as i64),
                s("maxHslot"),
                Value::Int(max as i64),
                s("pendingMessages"),
                Value::Int(pending as i64),
            ])
        })
        .collect();
    Ok(Answer::Reply(Value::List(vec![
        s("MyId"),
        s(c.me.as_str()),
        s("MyRunId"),
        s(c.link.incarnation()),
        Value::List(shards),
    ])))
}

/// RG.HELLO: without arguments, this shard's incarnation (as 1.2); with a peer's id,
/// incarnation and protocol version, `[id, incarnation, version]` of this shard.
pub fn hello(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    only_peers(ctx)?;
    let Some(c) = cluster() else {
        return Err("ERRCLUSTER this node is not part of a cluster".into());
    };
    match args.len() {
        1 => Ok(Answer::Reply(Value::str(c.link.incarnation()))),
        4 => {
            let _peer = text(&args[1])?;
            Ok(Answer::Reply(Value::List(vec![
                Value::str(c.me.as_str()),
                Value::str(c.link.incarnation()),
                Value::Int(PROTOCOL),
            ])))
        }
        _ => Err("ERR wrong number of arguments for 'rg.hello' command".into()),
    }
}

/// RG.INNERMSG: one frame from a peer; the reply is its ack.
pub fn inner_msg(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    only_peers(ctx)?;
    let Some(c) = cluster() else {
        return Err("ERRCLUSTER this node is not part of a cluster".into());
    };
    match c.receiver.take(args[1].as_slice()) {
        Ok(ack) => Ok(Answer::Reply(Value::Status(ack.as_str().into()))),
        Err(e) => Err(format!("ERR {e:#}")),
    }
}
