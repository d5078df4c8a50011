//! The one wasmtime Engine of the module, its epoch ticker, the Linker every guest is
//! instantiated with, and guarded calls into a guest instance.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};

use super::bindings::{Guest as GuestWorld, GuestPre};
use super::host_state::{HostState, Refused};
use crate::config::{self, Key};

/// How often the epoch advances: the granularity of the time budget and of aborts.
const TICK: Duration = Duration::from_millis(5);

struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

fn build() -> Result<Runtime> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // Signals-based traps (wasmtime's default: guard pages instead of bounds checks), with
    // Redis's crash report kept Redis's: crash.rs, before the engine installs its handlers.
    super::crash::install()?;
    cfg.memory_init_cow(false);
    // Profiling guests (bench/README.md): perf names their JIT code from /tmp/perf-<pid>.map.
    if std::env::var_os("GEARS_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&cfg)?;
    super::crash::armed()?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    GuestWorld::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("gears-wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })?;
    Ok(Runtime { engine, linker })
}

fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("the Wasm runtime could not start: {e}"))
}

/// Compiles a component and links it against the host (compile once, at upload).
pub fn prepare(component: &Component) -> Result<GuestPre<HostState>> {
    let pre = runtime()?.linker.instantiate_pre(component)?;
    Ok(GuestPre::new(pre)?)
}

pub fn engine() -> Result<&'static Engine> {
    Ok(&runtime()?.engine)
}

/// One instance of a guest with its own Store (memory, limits, clock).
pub struct GuestInstance {
    pub store: Store<HostState>,
    pub guest: std::sync::Arc<GuestWorld>,
}

/// Why a guest call failed.
pub enum Fault {
    /// The guest is unusable now (a trap, the time budget, the memory cap): the instance
    /// must be dropped.
    Trapped(String),
    /// RG.ABORTEXECUTION stopped the call (the instance is dropped too).
    Aborted,
    /// The guest answered with an error of its own; the instance stays usable.
    Error(String),
}

/// Marks the epoch callback's interruption causes.
#[derive(Debug)]
enum Interrupted {
    TimeUp(u64),
    Aborted,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupted::TimeUp(ms) => write!(
                f,
                "guest call exceeded its time budget of {ms} ms (WasmMaxCallMillis)"
            ),
            Interrupted::Aborted => write!(f, "aborted"),
        }
    }
}

impl std::error::Error for Interrupted {}

impl GuestInstance {
    pub fn new(pre: &GuestPre<HostState>) -> Result<GuestInstance> {
        let engine = engine()?;
        let cap = (config::get(Key::WasmMaxMemoryMB).max(1) as usize) << 20;
        let mut store = Store::new(engine, HostState::new(cap));
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.epoch_deadline_callback(|ctx| {
            if crate::host_api::abort_requested() {
                return Err(Interrupted::Aborted.into());
            }
            // A guest computing on a worker must not keep other clients out.
            crate::redis::lock::yield_if_slice_over();
            let st = ctx.data();
            if st.guest_time() > st.budget {
                return Err(Interrupted::TimeUp(st.budget.as_millis() as u64).into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        let guest = pre.instantiate(&mut store)?;
        Ok(GuestInstance {
            store,
            guest: std::sync::Arc::new(guest),
        })
    }

    /// Calls into the guest with the time budget of WasmMaxCallMillis. `Ok(Err(e))` from
    /// the export is the guest's own error.
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&GuestWorld, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, Fault> {
        {
            let st = self.store.data_mut();
            st.budget = Duration::from_millis(config::get(Key::WasmMaxCallMillis).max(1) as u64);
            st.call_started = std::time::Instant::now();
            st.in_host = Duration::ZERO;
        }
        self.store.set_epoch_deadline(1);
        let guest = self.guest.clone();
        let outcome = f(&guest, &mut self.store);
        self.store.data_mut().release_atomic();
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(Fault::Error(e)),
            Err(e) => Err(self.fault_of(e)),
        }
    }

    fn fault_of(&self, e: wasmtime::Error) -> Fault {
        if let Some(i) = e.downcast_ref::<Interrupted>() {
            return match i {
                Interrupted::Aborted => Fault::Aborted,
                t => Fault::Trapped(t.to_string()),
            };
        }
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Fault::Trapped(refused.to_string());
        }
        let st = self.store.data();
        if st.memory_exceeded {
            return Fault::Trapped(format!(
                "guest exceeded its memory cap of {} MB (WasmMaxMemoryMB)",
                st.memory_cap >> 20
            ));
        }
        let text = match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => {
                "guest overflowed its stack (endless recursion?)".to_string()
            }
            Some(trap) => match st.last_stderr_line() {
                Some(line) => format!("guest trapped ({trap}): {line}"),
                None => format!("guest trapped: {trap}"),
            },
            None => format!("guest failed: {e:#}"),
        };
        Fault::Trapped(text)
    }
}
