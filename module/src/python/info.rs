//! The module's INFO section `rg_python`: the interpreter's memory and the watchdog's
//! interruptions, where an operator looks first (INFO rg / INFO everything).
//!
//! Python's blocks come from pymalloc and the C library's malloc, not RedisModule_Alloc,
//! so they are not in used_memory and maxmemory does not see them (Redis 7.0 has no API
//! for a module to add memory there): this section is where they show.

use redis_module::{InfoContext, RedisResult};

use super::{memory, session, watchdog};

#[linkme::distributed_slice(redis_module::server_events::INFO_COMMAND_HANDLER_LIST)]
static PYTHON_INFO: fn(&InfoContext, bool) -> RedisResult<()> = python_info;

fn python_info(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    if !memory::installed() {
        return Ok(());
    }
    let stats = memory::stats();
    let (over_budget, aborted) = watchdog::interruptions();
    ctx.builder()
        .add_section("python")
        .field("python_allocated_bytes", stats.current)?
        .field("python_peak_allocated_bytes", stats.peak)?
        .field("python_total_allocated_bytes", stats.total)?
        .field("python_sessions", session::live_count() as u64)?
        .field("python_interrupted_over_budget", over_budget)?
        .field("python_interrupted_aborted", aborted)?
        .build_section()?
        .build_info()?;
    Ok(())
}
