//! The module's INFO section `rg_cluster`, on a cluster node: what the shard links
//! moved, where an operator looks (INFO rg): frames and bytes sent, frames received,
//! connections that broke mid-send, frames not yet acknowledged, and the distributed runs in flight.

use redis_module::{InfoContext, RedisResult};

use super::{cluster, lock};

#[linkme::distributed_slice(redis_module::server_events::INFO_COMMAND_HANDLER_LIST)]
static CLUSTER_INFO: fn(&InfoContext, bool) -> RedisResult<()> = cluster_info;

fn cluster_info(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    let Some(c) = cluster() else {
        return Ok(());
    };
    let (frames, bytes, broken) = c.link.totals();
    let runs = lock(&c.runs).len() as u64;
    ctx.builder()
        .add_section("cluster")
        .field("cluster_frames_sent", frames)?
        .field("cluster_bytes_sent", bytes)?
        .field("cluster_frames_received", c.receiver.frames_received())?
        .field("cluster_link_failures", broken)?
        .field("cluster_pending_messages", c.link.pending() as u64)?
        .field("cluster_runs_in_flight", runs)?
        .build_section()?
        .build_info()?;
    Ok(())
}
