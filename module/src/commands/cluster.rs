//! Keeping the cluster topology current: read once the cluster is up and on a timer
//! after that, since Redis 7.0 raises no event when slots move. An unchanged topology
//! changes nothing. (RG.REFRESHCLUSTER and RG.INFOCLUSTER come with the shard links.)

use std::time::Duration;

use redis_module::Context;

use crate::globals::globals;
use crate::redis::cluster::read_topology;

/// How often the topology is read again.
const EVERY: Duration = Duration::from_secs(1);

/// Reads the topology now; logs a change. (Main thread.)
pub fn refresh(ctx: &Context) {
    let g = globals();
    match read_topology(ctx, &g.shard_id) {
        Ok(t) => {
            let masters = t.shards.len();
            let mine = t.mine().map_or(0, |s| s.ranges.len());
            if g.set_topology(t) {
                ctx.log_notice(&format!(
                    "gears: cluster topology: {masters} masters own slots; \
                     this shard owns {mine} ranges"
                ));
            }
        }
        Err(e) => ctx.log_warning(&format!("gears: reading the cluster topology: {e:#}")),
    }
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
