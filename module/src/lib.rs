//! A Redis module that runs data pipelines next to the data: RedisGears 1.x compatible
//! Python recipes (RG.PYEXECUTE) and sandboxed WebAssembly guests (RG.WASMUPLOAD), as
//! batch jobs over the keyspace or as triggers on keyspace events, streams, commands and
//! timers. This file is the entry point only: commands, configuration and load.
//!
//! # Layout
//!
//! From the top of the house down; a module imports only from the ones below it.
//!
//! - `commands/`: the RG.* handlers, one file per family; each runs behind `guarded`.
//!   Beside them, what Redis itself shows of the module: `info` (INFO rg), `docs`
//!   (COMMAND DOCS), `redis_config` (CONFIG rg.*), `categories` (ACL categories).
//! - `persist`: registrations and guests in the RDB (aux data).
//! - `python/`, `wasm/`: the two language hosts. Each turns its front end's builder into
//!   engine steps, fuses its consecutive steps into one operator, and adapts `host_api`.
//! - `host_api`: what running code may ask of the module (execute, log, config, shard id,
//!   hashtag, call_next, override_reply), the same for both languages.
//! - `plans/`: what the front ends share: reader arguments, readers and triggers built
//!   from them, operations expanded into engine steps.
//! - `triggers/`: event sources that start registered executions.
//! - `launch`: starts executions on this shard (the runner's shell: lock, pool, limits).
//! - `readers/`: run() sources (SCAN, stream ranges, shard ids).
//! - `config`, `globals`: the RG.CONFIG values; the state created at load.
//! - `redis/`: the thin Redis layer: the lock and its slices, the execute() door, ACL,
//!   calls, the read fast path, replies, blocked clients, the command filter, the
//!   rate-limited log lines.
//! - `engine/`, `cluster/`: the language- and Redis-agnostic core (values, plans, compile,
//!   the stage runner, cohorts of async events, executions, registrations, the pool) and
//!   hash slots.

// Unsafe code says why it is sound: every unsafe block (and unsafe impl) a `// SAFETY:`
// comment, every unsafe fn, private ones too (module/clippy.toml), a `# Safety` section
// with its caller's obligations, and an unsafe fn's body is no implicit unsafe block.
// The conventions those comments lean on are in redis/mod.rs. Checked by `make lint`.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

pub mod cluster;
pub mod commands;
pub mod config;
pub mod distributed;
pub mod engine;
pub mod globals;
pub mod host_api;
pub mod launch;
pub mod persist;
pub mod plans;
#[cfg(feature = "python")]
pub mod python;
#[cfg(not(feature = "python"))]
#[path = "python_off.rs"]
pub mod python;
pub mod readers;
pub mod redis;
pub mod triggers;
pub mod wasm;

use redis_module::{Context, RedisResult, RedisString, Status};

use crate::persist::GEARS_AUX;

use crate::commands::{
    config as config_cmds, executions as exec_cmds, guarded, python as py_cmds,
    registrations as reg_cmds,
};

/// Load-time arguments old RedisGears deployments pass that mean nothing here.
const IGNORED_LOAD_ARGS: &[&str] = &[
    "Plugin",
    "CreateVenv",
    "PythonInstallationDir",
    "DownloadDeps",
    "DependenciesUrl",
    "DependenciesSha256",
    "PythonInstallReqMaxIdleTime",
];

fn apply_load_args(ctx: &Context, args: &[RedisString]) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy()).collect();
    let mut i = 0;
    while i < args.len() {
        let name = &args[i];
        let Some(value) = args.get(i + 1) else {
            ctx.log_warning(&format!(
                "gears: load argument '{name}' has no value; ignored"
            ));
            break;
        };
        if IGNORED_LOAD_ARGS
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            ctx.log_notice(&format!(
                "gears: load argument '{name} {value}' is not used by this module; ignored"
            ));
        } else if let Err(e) = config::set_by_name(name, value, true) {
            return Err(format!("bad load argument: {e}"));
        }
        i += 2;
    }
    Ok(())
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    config::reset();
    ctx.log_notice(&redis::capabilities::get().line());
    if let Err(e) = apply_load_args(ctx, args) {
        ctx.log_warning(&format!("gears: {e}"));
        return Status::Err;
    }
    match commands::redis_config::register(ctx) {
        Ok(true) => {}
        Ok(false) => ctx.log_notice(
            "gears: this server has no module configuration: use load arguments and RG.CONFIGSET",
        ),
        Err(e) => {
            ctx.log_warning(&format!("gears: {e}"));
            return Status::Err;
        }
    }
    redis::lock::init_main_thread(ctx);
    if let Some(point) = std::env::var("GEARS_TEST_PANIC")
        .ok()
        .and_then(|p| engine::fault::Point::parse(&p))
    {
        ctx.log_warning(&format!(
            "fault injection armed at {point:?} (GEARS_TEST_PANIC)"
        ));
        engine::fault::arm(point);
    }
    if std::env::var("GEARS_TEST_PLAN_TRAVEL").as_deref() == Ok("1") {
        ctx.log_warning("every plan goes through its bytes (GEARS_TEST_PLAN_TRAVEL)");
        engine::plan_codec::travel_always();
    }
    redis::fast::init(ctx);
    redis::lock::set_slice_micros(config::get(config::Key::LockSliceMicros) as u64);
    let python = config::get(config::Key::PythonEnabled) == 1;
    let python_version = if python {
        match start_python() {
            Ok(version) => Some(version),
            Err(e) => {
                ctx.log_warning(&format!("gears: {e:#}"));
                return Status::Err;
            }
        }
    } else {
        None
    };
    if let Some(v) = &python_version {
        commands::info::set_python_version(v.clone());
    }
    let threads = config::get(config::Key::ExecutionThreads) as usize;
    let pool = match engine::pool::Pool::new(threads, redis::lock::mark_worker) {
        Ok(pool) => pool,
        Err(e) => {
            ctx.log_warning(&format!("gears: cannot start worker threads: {e}"));
            return Status::Err;
        }
    };
    redis::filter::install(ctx, triggers::hooks::intercepted::is_intercepted);
    match commands::categories::apply(ctx) {
        Ok(a) if a.categories => ctx.log_notice(&format!(
            "gears: ACL categories set on RG.* commands{}",
            if a.gears_category {
                ", with the category @gears"
            } else {
                " (this server cannot add a @gears category)"
            }
        )),
        Ok(_) => ctx.log_notice(
            "gears: this server puts module commands in no ACL category: name RG.* commands in ACL rules",
        ),
        Err(e) => {
            ctx.log_warning(&format!("gears: setting ACL categories failed: {e}"));
            return Status::Err;
        }
    }
    match commands::docs::apply(ctx) {
        Ok(true) => {}
        Ok(false) => ctx.log_notice("gears: this server keeps no docs of module commands"),
        // Docs are help text: a server that refuses them still runs the commands.
        Err(e) => ctx.log_warning(&format!("gears: command docs not set: {e}")),
    }
    // On a cluster node the shard id is the node id; its topology is read on a timer.
    let node_id = redis::cluster::my_id(ctx);
    let shard_id = node_id.clone().unwrap_or_else(|| "0".repeat(40));
    globals::init(globals::Globals {
        registry: engine::registry::Registry::new(shard_id.clone()),
        registrations: Default::default(),
        topology: std::sync::RwLock::new(std::sync::Arc::new(
            cluster::topology::Topology::standalone(&shard_id),
        )),
        shard_id,
        pool,
        python,
    });
    distributed::ask::set_answerer(commands::executions::answer);
    if let Some(me) = &node_id {
        // Drawn once per process: peers tell a restart from a reconnect by it.
        let incarnation = cluster::incarnation::draw();
        let secret = config::secret(config::CLUSTER_SECRET).map(String::into_bytes);
        if let Err(e) = distributed::init(me, &incarnation, secret) {
            ctx.log_warning(&format!("gears: cannot start the cluster link: {e}"));
            return Status::Err;
        }
        // The link's credentials and peers now, so RG.HELLO answers peers at once.
        distributed::refresh(ctx);
        commands::cluster::watch(ctx);
    }
    // Keyspace events (triggers/nested.rs); last, so none arrives before the state it needs.
    if let Err(e) = triggers::nested::subscribe(ctx) {
        ctx.log_warning(&format!("gears: {e}"));
        return Status::Err;
    }
    ctx.log_notice(&banner(python_version.as_deref(), threads));
    Status::Ok
}

/// Starts the interpreter; its version ("3.11.7").
#[cfg(feature = "python")]
fn start_python() -> anyhow::Result<String> {
    python::runtime::init()?;
    Ok(python::runtime::version())
}

#[cfg(not(feature = "python"))]
fn start_python() -> anyhow::Result<String> {
    anyhow::bail!(
        "this build of the module has no Python: load it with PythonEnabled 0, or load \
         redisgears.so, which picks the build for the PythonEnabled it is given"
    )
}

/// The load line: what this server runs (INFO rg has the same and more).
fn banner(python: Option<&str>, threads: usize) -> String {
    let python = match python {
        Some(v) => format!("Python {v}"),
        None => "Python off".into(),
    };
    format!(
        "gears {} loaded: {python}, {threads} execution threads, Wasm guests of contract {} \
         to {} (wasmtime)",
        commands::info::VERSION,
        wasm::bindings::OLDEST_CONTRACT,
        wasm::bindings::CONTRACT_VERSION,
    )
}

/// MODULE LIST's version: major * 10000 + minor * 100 + patch of the crate's version.
const fn module_version() -> i32 {
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    let mut parts = [0i32; 3];
    let (mut i, mut k) = (0, 0);
    while i < v.len() && k < 3 {
        match v[i] {
            b'0'..=b'9' => parts[k] = parts[k] * 10 + (v[i] - b'0') as i32,
            b'.' => k += 1,
            _ => break,
        }
        i += 1;
    }
    parts[0] * 10000 + parts[1] * 100 + parts[2]
}

/// MODULE UNLOAD would leave the interpreter and the worker threads behind: refuse it.
fn deinit(ctx: &Context) -> Status {
    ctx.log_warning("gears: this module can not be unloaded");
    Status::Err
}

macro_rules! command {
    ($name:ident, $handler:path) => {
        fn $name(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
            guarded(ctx, args, $handler)
        }
    };
}

command!(rg_pyexecute, py_cmds::pyexecute);
command!(rg_pystats, py_cmds::pystats);
command!(rg_pydumpsessions, py_cmds::pydumpsessions);
command!(rg_pydumpreqs, commands::requirements::pydumpreqs);
command!(rg_pyprofile, py_cmds::pyprofile);
command!(rg_pyexportreq, commands::requirements::pyexportreq);
command!(rg_pyimportreq, commands::requirements::pyimportreq);
command!(rg_getexecution, exec_cmds::get_execution);
command!(rg_getresults, exec_cmds::get_results);
command!(rg_getresultsblocking, exec_cmds::get_results_blocking);
command!(rg_dropexecution, exec_cmds::drop_execution);
command!(rg_abortexecution, exec_cmds::abort_execution);
command!(rg_dumpexecutions, exec_cmds::dump_executions);
command!(rg_configget, config_cmds::config_get);
command!(rg_configset, config_cmds::config_set);
command!(rg_dumpregistrations, reg_cmds::dump_registrations);
command!(rg_innerregister, py_cmds::inner_register);
command!(rg_trigger, commands::trigger::trigger);
command!(rg_innerhook, commands::inner_hook::inner_hook);
command!(rg_triggeronkey, commands::trigger::trigger_on_key);
command!(rg_unregister, reg_cmds::unregister);
command!(rg_clearregistrationsstats, reg_cmds::clear_stats);
command!(rg_pauseregistrations, reg_cmds::pause);
command!(rg_unpauseregistrations, reg_cmds::unpause);
command!(rg_wasmupload, commands::wasm::upload);
command!(rg_innerwasm, commands::wasm::inner_upload);
command!(rg_wasmrun, commands::wasm::run);
command!(rg_wasmlist, commands::wasm::list);
command!(rg_wasmdelete, commands::wasm::delete);
command!(rg_dumpcode, commands::code::dump);
command!(rg_restorecode, commands::code::restore);
command!(rg_flushcode, commands::code::flush);
command!(rg_infocluster, commands::cluster::info_cluster);
command!(rg_refreshcluster, commands::cluster::refresh_cluster);
command!(rg_hello, commands::cluster::hello);
command!(rg_innermsg, commands::cluster::inner_msg);

#[cfg(not(test))]
redis_module::redis_module! {
    name: "rg",
    version: module_version(),
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [GEARS_AUX],
    init: init,
    deinit: deinit,
    commands: [
        ["rg.pyexecute", rg_pyexecute, "write deny-script admin", 0, 0, 0, ""],
        ["rg.pystats", rg_pystats, "readonly", 0, 0, 0, ""],
        ["rg.pydumpsessions", rg_pydumpsessions, "readonly", 0, 0, 0, ""],
        ["rg.pydumpreqs", rg_pydumpreqs, "readonly", 0, 0, 0, ""],
        ["rg.pyprofile", rg_pyprofile, "readonly", 0, 0, 0, ""],
        ["rg.pyexportreq", rg_pyexportreq, "readonly", 0, 0, 0, ""],
        ["rg.pyimportreq", rg_pyimportreq, "write deny-script admin", 0, 0, 0, ""],
        ["rg.getexecution", rg_getexecution, "readonly", 0, 0, 0, ""],
        ["rg.getresults", rg_getresults, "readonly", 0, 0, 0, ""],
        ["rg.getresultsblocking", rg_getresultsblocking, "readonly", 0, 0, 0, ""],
        ["rg.dropexecution", rg_dropexecution, "", 0, 0, 0, ""],
        ["rg.abortexecution", rg_abortexecution, "", 0, 0, 0, ""],
        ["rg.dumpexecutions", rg_dumpexecutions, "readonly", 0, 0, 0, ""],
        ["rg.configget", rg_configget, "readonly", 0, 0, 0, ""],
        ["rg.configset", rg_configset, "admin deny-script", 0, 0, 0, ""],
        ["rg.dumpregistrations", rg_dumpregistrations, "readonly", 0, 0, 0, ""],
        ["rg.unregister", rg_unregister, "write deny-script admin", 0, 0, 0, ""],
        ["rg.innerregister", rg_innerregister, "write deny-script admin", 0, 0, 0, ""],
        ["rg.trigger", rg_trigger, "write", 0, 0, 0, ""],
        ["rg.innerhook", rg_innerhook, "", 0, 0, 0, ""],
        ["rg.triggeronkey", rg_triggeronkey, "write", 2, 2, 1, ""],
        ["rg.clearregistrationsstats", rg_clearregistrationsstats, "admin", 0, 0, 0, ""],
        ["rg.pauseregistrations", rg_pauseregistrations, "write deny-script admin", 0, 0, 0, ""],
        ["rg.unpauseregistrations", rg_unpauseregistrations, "write deny-script admin", 0, 0, 0, ""],
        ["rg.wasmupload", rg_wasmupload, "write deny-script", 0, 0, 0, ""],
        ["rg.innerwasm", rg_innerwasm, "write deny-script admin", 0, 0, 0, ""],
        ["rg.wasmrun", rg_wasmrun, "write deny-script", 0, 0, 0, ""],
        ["rg.wasmlist", rg_wasmlist, "readonly", 0, 0, 0, ""],
        ["rg.wasmdelete", rg_wasmdelete, "write deny-script", 0, 0, 0, ""],
        ["rg.dumpcode", rg_dumpcode, "readonly admin", 0, 0, 0, ""],
        ["rg.restorecode", rg_restorecode, "write deny-script admin", 0, 0, 0, ""],
        ["rg.flushcode", rg_flushcode, "write deny-script admin", 0, 0, 0, ""],
        ["rg.infocluster", rg_infocluster, "readonly", 0, 0, 0, ""],
        ["rg.refreshcluster", rg_refreshcluster, "readonly deny-script", 0, 0, 0, ""],
        ["rg.hello", rg_hello, "readonly fast deny-script", 0, 0, 0, ""],
        ["rg.innermsg", rg_innermsg, "readonly fast deny-script", 0, 0, 0, ""],
    ],
}
