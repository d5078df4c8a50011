//! The module's INFO sections `rg_executions`, `rg_registrations` and `rg_runtime` (beside
//! `rg_python`, python/info.rs, and `rg_cluster`, distributed/info.rs): what an operator
//! watches without an RG.* command (`INFO rg`, `INFO modules`, `INFO everything`).
//!
//! Every figure is read without waiting on anything a run may hold for long: counters
//! are atomics, lists are snapshots taken under the module's short internal locks, and
//! the GIL is never taken (INFO runs on the main thread, which must not wait for a
//! worker). In a crash report only the counters are written: the crashed thread may hold
//! any lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use redis_module::{InfoContext, RedisResult};

use crate::config::{self, Key};
use crate::engine::execution::OUTCOMES;
use crate::engine::registration::Stats;
use crate::globals::{self, Globals};

/// The module's version, as Cargo has it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The interpreter's version, noted once at load (INFO never takes the GIL to ask).
static PYTHON_VERSION: OnceLock<String> = OnceLock::new();

pub fn set_python_version(version: String) {
    let _ = PYTHON_VERSION.set(version);
}

/// At most this many registrations get a line of their own.
const REGISTRATION_LINES: usize = 100;

#[linkme::distributed_slice(redis_module::server_events::INFO_COMMAND_HANDLER_LIST)]
static GEARS_INFO: fn(&InfoContext, bool) -> RedisResult<()> = info;

fn info(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    // INFO is called from C: a panic here only loses these sections.
    catch_unwind(AssertUnwindSafe(|| write(ctx, for_crash_report))).unwrap_or(Ok(()))
}

enum Field {
    Int(i64),
    Text(String),
    /// `name:k=v,k=v`.
    Dict(Vec<(&'static str, String)>),
}

fn int(v: u64) -> Field {
    Field::Int(v.min(i64::MAX as u64) as i64)
}

fn write(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    let mut sections = vec![("executions", executions())];
    if let Some(g) = globals::loaded().filter(|_| !for_crash_report) {
        if let Some((_, fields)) = sections.first_mut() {
            fields.push((
                "executions_kept".into(),
                int(g.registry.list().len() as u64),
            ));
            fields.push((
                "results_bytes".into(),
                int(g.registry.result_bytes() as u64),
            ));
        }
        sections.push(("registrations", registrations(g)));
        sections.push(("runtime", runtime(g)));
    }
    let mut builder = ctx.builder();
    for (name, fields) in sections {
        let mut section = builder.add_section(name);
        for (key, value) in fields {
            section = match value {
                Field::Int(v) => section.field(&key, v)?,
                Field::Text(v) => section.field(&key, v)?,
                Field::Dict(pairs) => {
                    let mut dict = section.add_dictionary(&key);
                    for (k, v) in pairs {
                        dict = dict.field(k, v)?;
                    }
                    dict.build_dictionary()?
                }
            };
        }
        builder = section.build_section()?;
    }
    builder.build_info().map(|_| ())
}

fn executions() -> Vec<(String, Field)> {
    let created = OUTCOMES.created.load(Ordering::Relaxed);
    let done = OUTCOMES.done.load(Ordering::Relaxed);
    let failed = OUTCOMES.failed.load(Ordering::Relaxed);
    let aborted = OUTCOMES.aborted.load(Ordering::Relaxed);
    let running = created.saturating_sub(done + failed + aborted);
    vec![
        ("executions_running".into(), int(running)),
        ("executions_created".into(), int(created)),
        ("executions_done".into(), int(done)),
        ("executions_failed".into(), int(failed)),
        ("executions_aborted".into(), int(aborted)),
    ]
}

fn registrations(g: &Globals) -> Vec<(String, Field)> {
    let regs = g.registrations.list();
    let mut total = Stats::default();
    let mut each = Vec::new();
    for reg in &regs {
        let st = reg.stats().clone();
        total.add(&st);
        if each.len() < REGISTRATION_LINES {
            each.push((
                format!("registration_{}", reg.id),
                Field::Dict(vec![
                    ("owner", reg.owner_name()),
                    ("reader", reg.trigger.reader().to_string()),
                    ("mode", reg.plan.mode.as_str().to_string()),
                    ("triggered", st.triggered.to_string()),
                    ("succeeded", st.success.to_string()),
                    ("failed", st.failures.to_string()),
                    ("aborted", st.aborted.to_string()),
                    ("paused", u8::from(reg.is_paused()).to_string()),
                ]),
            ));
        }
    }
    let mut fields = vec![
        ("registrations".into(), int(regs.len() as u64)),
        ("registrations_triggered".into(), int(total.triggered)),
        ("registrations_succeeded".into(), int(total.success)),
        ("registrations_failed".into(), int(total.failures)),
        ("registrations_aborted".into(), int(total.aborted)),
        ("events_overflowed".into(), int(total.overflows)),
        (
            "events_pending".into(),
            int(crate::triggers::pending_events() as u64),
        ),
    ];
    fields.extend(each);
    fields
}

fn runtime(g: &Globals) -> Vec<(String, Field)> {
    let python = match (g.python, PYTHON_VERSION.get()) {
        (true, Some(v)) => v.clone(),
        (true, None) => "on".into(),
        (false, _) => "off".into(),
    };
    let mut fields = vec![
        ("version".into(), Field::Text(VERSION.into())),
        (
            "execution_threads".into(),
            Field::Int(config::get(Key::ExecutionThreads)),
        ),
        ("python".into(), Field::Text(python)),
    ];
    let guests = crate::wasm::guests::list();
    let idle: usize = guests.iter().map(|p| p.idle_instances()).sum();
    fields.push(("wasm_guests".into(), int(guests.len() as u64)));
    fields.push(("wasm_idle_instances".into(), int(idle as u64)));
    fields
}
