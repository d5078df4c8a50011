//! Starting executions on this shard: the runner's shell (the Redis lock slice, the pool,
//! whom a run acts for, the registry's limits), the current-execution marker, replies.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::{self, Key};
use crate::engine::backlog::{Backlog, Pending};
use crate::engine::cohort::{self, Cohort};
use crate::engine::compile::{without_exchanges, Stage};
use crate::engine::execution::{ExecState, Execution, Status};
use crate::engine::plan::{Exchange, Mode, Plan};
use crate::engine::reader::Reader;
use crate::engine::registry::Limits;
pub use crate::engine::run::Then;
use crate::engine::run::{Alone, Peers, Run, Shell};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::{door, lock};

/// This shard as the runner sees it.
struct ShardShell;

impl Shell for ShardShell {
    fn batch_size(&self) -> usize {
        config::get(Key::BatchSize).max(1) as usize
    }
    fn profile(&self) -> bool {
        config::get(Key::ProfileExecutions) == 1
    }
    fn enter(&self, exec: &Arc<Execution>) -> Box<dyn Any> {
        Box::new((door::act_as(&exec.run_as), Marker::push(exec)))
    }
    fn end_batch(&self) {
        lock::end_batch();
    }
    fn abandon(&self) {
        lock::atomic_reset();
        lock::release_slice();
    }
    fn after_record(&self, exec: &Execution) {
        trim(exec);
    }
    fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
        globals().pool.submit(job);
    }
}

fn shell() -> Arc<dyn Shell> {
    static SHELL: OnceLock<Arc<dyn Shell>> = OnceLock::new();
    SHELL.get_or_init(|| Arc::new(ShardShell)).clone()
}

/// Keeps the registry within MaxExecutions / MaxExecutionsPerRegistration /
/// MaxResultsBytes once `exec` has finished.
pub fn trim(exec: &Execution) {
    let limits = Limits {
        max: config::get(Key::MaxExecutions).max(1) as usize,
        per_registration: config::get(Key::MaxExecutionsPerRegistration).max(0) as usize,
        max_bytes: config::get(Key::MaxResultsBytes).max(0) as usize,
    };
    globals().registry.finished(exec, &limits);
}

thread_local! {
    /// The executions running on this thread, innermost last (a hook's call_next runs
    /// the next hook inside the current one).
    static CURRENT: std::cell::RefCell<Vec<(u64, Arc<AtomicBool>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks an execution as running on this thread while it lives.
struct Marker;

impl Marker {
    fn push(exec: &Execution) -> Marker {
        CURRENT.with(|c| c.borrow_mut().push((exec.seq, exec.abort_flag())));
        Marker
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

/// The sequence number of the execution running on this thread, if any.
pub fn current_execution() -> Option<u64> {
    CURRENT.with(|c| c.borrow().last().map(|(seq, _)| *seq))
}

/// The abort flag of the execution running on this thread, if any.
pub fn current_abort_flag() -> Option<Arc<AtomicBool>> {
    CURRENT.with(|c| c.borrow().last().map(|(_, flag)| flag.clone()))
}

/// Whether RG.ABORTEXECUTION asked the execution running on this thread to stop.
pub fn abort_requested_here() -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .last()
            .is_some_and(|(_, flag)| flag.load(Ordering::Acquire))
    })
}

thread_local! {
    /// Whether the sync run started in this scope may finish on the pool (see `Movable`).
    static MOVABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets the sync run started while it lives leave this thread when a step returns a
/// future or a coroutine (RedisGears 1.2 moves such a run to the background): the caller
/// can then wait for the run without holding Redis (it blocks its client, or nobody
/// waits). Callers that must have the run's end before they return (a hook, a timer, a
/// command inside MULTI or a script) never allow it, and a run nested inside another
/// execution on this thread never moves.
pub struct Movable(bool);

impl Movable {
    pub fn allow(yes: bool) -> Movable {
        Movable(MOVABLE.with(|m| m.replace(yes)))
    }
}

impl Drop for Movable {
    fn drop(&mut self) {
        MOVABLE.with(|m| m.set(self.0));
    }
}

/// Whether an execution runs on this thread now (an event raised here is nested in it).
pub fn in_execution() -> bool {
    CURRENT.with(|c| !c.borrow().is_empty())
}

/// Whether the execution running on this thread may finish on the pool (`Movable`).
pub fn may_move_here() -> bool {
    MOVABLE.with(|m| m.get()) && CURRENT.with(|c| c.borrow().len() == 1)
}

/// One compiled execution of a plan, ready to start on this shard.
pub struct Launch {
    pub exec: Arc<Execution>,
    pub plan: Arc<Plan>,
    pub reader: Box<dyn Reader>,
    pub stages: Vec<Stage>,
    /// Runs here and now whatever the plan's mode (an event inside MULTI, a full queue):
    /// its records stay on this shard.
    pub inline: bool,
    /// Runs once the execution has ended, on the thread that ended it.
    pub then: Option<Then>,
}

fn run_of(launch: Launch) -> Arc<Run> {
    static ALONE: OnceLock<Arc<dyn Peers>> = OnceLock::new();
    let peers = ALONE.get_or_init(|| Arc::new(Alone)).clone();
    run_with(launch, peers)
}

/// The run of `launch` with its sinks reaching `peers` (other shards, when the plan is
/// async and not inline; else every sink stays here).
pub fn run_with(launch: Launch, peers: Arc<dyn Peers>) -> Arc<Run> {
    // Records of sync and async_local runs never leave their shard.
    let stages = match launch.plan.mode {
        Mode::Async if !launch.inline => launch.stages,
        _ => without_exchanges(launch.stages),
    };
    let run = Run::new(
        launch.exec,
        launch.reader,
        stages,
        launch.plan.host.clone(),
        shell(),
        peers,
    );
    if let Some(then) = launch.then {
        run.then(then);
    }
    run
}

/// Runs an execution here, on this thread (sync mode, or inline).
pub fn run_here(launch: Launch) {
    run_of(launch).work_here();
}

/// Runs an execution on the worker pool.
pub fn submit(launch: Launch) {
    run_of(launch).spawn();
}

/// Runs an execution of `plan` on the worker pool, compiling its stages there (compiling
/// a Python plan takes the GIL, which the main thread must not wait for). `before` runs
/// first, on the worker.
pub fn submit_compiled(
    exec: Arc<Execution>,
    plan: Arc<Plan>,
    reader: Box<dyn Reader>,
    then: Option<Then>,
    before: impl FnOnce() + Send + 'static,
) {
    globals().pool.submit(move || {
        before();
        start_on_worker(exec, plan, reader, then);
    });
}

/// Compiles and runs an execution of `plan` on this pool worker (or spreads it over the
/// cluster when its records move).
pub fn start_on_worker(
    exec: Arc<Execution>,
    plan: Arc<Plan>,
    reader: Box<dyn Reader>,
    then: Option<Then>,
) {
    let profile = config::get(Key::ProfileExecutions) == 1;
    match plan.compile(profile, false) {
        Ok(stages) => {
            let mut launch = Launch {
                exec,
                plan,
                reader,
                stages,
                inline: false,
                then,
            };
            if let (Some(spread), Some(registration)) =
                (SPREAD.get(), launch.exec.registration.clone())
            {
                if moves_records(&launch) {
                    match spread(launch, &registration) {
                        Ok(()) => return,
                        Err(back) => launch = back,
                    }
                }
            }
            // Already on a worker: no need to queue again.
            run_of(launch).work_on_worker();
        }
        Err(e) => {
            if not_compiled(&exec, &e, then) {
                // `then` may have taken the lock on this worker.
                lock::release_slice();
            }
        }
    }
}

/// Runs async events of a registration's `plan` on this pool worker, oldest first: as
/// one cohort (`engine::cohort`: the plan compiled once, the runtime entered once) when
/// the plan has one operator and moves no records, else one run each. `backlog` is told
/// which event is in progress.
pub fn run_events(plan: &Arc<Plan>, events: Vec<Pending>, backlog: &Backlog) {
    let profile = config::get(Key::ProfileExecutions) == 1;
    let operator = || {
        plan.compile(false, false)
            .map_err(|e| format!("{e:#}"))
            .and_then(|stages| {
                cohort::single_operator(stages)
                    .ok_or_else(|| "the plan changed shape while it ran".to_string())
            })
    };
    let first = match plan.mode {
        Mode::Async if !profile && cohort::fits(&plan.steps) => operator().ok(),
        _ => None,
    };
    let Some(first) = first else {
        for p in events {
            let _in_progress = backlog.begin(p.exec.seq);
            start_on_worker(p.exec, plan.clone(), p.reader, p.then);
        }
        return;
    };
    let shell = shell();
    Cohort {
        shell: &*shell,
        host: plan.host.as_ref(),
        operator: &operator,
        backlog: Some(backlog),
    }
    .run(events, Some(first));
}

/// Starts an async run of a registration on every master, as an event's run on a
/// cluster must (`distributed::start_registration`); gives the launch back when it
/// stays here.
pub type Spread = fn(Launch, &str) -> Result<(), Launch>;

static SPREAD: OnceLock<Spread> = OnceLock::new();

/// Sets how registration runs spread over a cluster (at load, on a cluster node).
pub fn set_spread(spread: Spread) {
    let _ = SPREAD.set(spread);
}

/// Whether an async run sends records to other shards: only a repartition does. A run
/// without one reads the event here and collects here, so it stays here whole.
fn moves_records(launch: &Launch) -> bool {
    launch.plan.mode == Mode::Async
        && launch
            .stages
            .iter()
            .any(|s| matches!(s.exchange, Some(Exchange::Repartition(_))))
}

/// Compiles and runs an execution of `plan` here, on this thread, whatever the plan's
/// mode (its records stay on this shard).
pub fn run_plan_here(
    exec: Arc<Execution>,
    plan: Arc<Plan>,
    reader: Box<dyn Reader>,
    then: Option<Then>,
) {
    let profile = config::get(Key::ProfileExecutions) == 1;
    match plan.compile(profile, true) {
        Ok(stages) => run_here(Launch {
            exec,
            plan,
            reader,
            stages,
            inline: true,
            then,
        }),
        Err(e) => {
            not_compiled(&exec, &e, then);
        }
    }
}

/// Ends an execution whose plan did not compile, then runs its `then`; whether it had one.
fn not_compiled(exec: &Arc<Execution>, error: &anyhow::Error, then: Option<Then>) -> bool {
    let errors = vec![format!("{error:#}")];
    if exec.record(Vec::new(), errors, Status::Done, 0, 0, Vec::new()) {
        trim(exec);
        exec.answer_waiters();
    }
    then.map(|then| then(exec)).is_some()
}

/// `[[results...], [errors...]]`, or the error of a run a fault ended.
pub fn results_reply(st: &ExecState) -> Value {
    if let Some(fault) = &st.fault {
        return Value::Error(format!("ERR {fault}"));
    }
    Value::List(vec![
        Value::List(st.results.clone()),
        Value::List(st.errors.iter().map(|e| Value::Str(e.clone())).collect()),
    ])
}
