//! One run of a plan: its status, results and errors, and the clients waiting for it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Done,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Done => "done",
            Status::Aborted => "aborted",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Aborted)
    }
}

/// One step as RG.GETEXECUTION reports it.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub type_name: Arc<str>,
    pub name: Arc<str>,
    pub arg: Arc<str>,
    pub nanos: u64,
}

/// Everything an execution reports.
pub struct ExecState {
    pub status: Status,
    pub results: Vec<Value>,
    pub errors: Vec<String>,
    pub steps: Vec<StepReport>,
    pub total_ms: u64,
    pub read_ms: u64,
    /// Entries into each language runtime, by host name.
    pub entries: Vec<(&'static str, u64)>,
    /// Set when a fault (a caught panic) ended the run: its client gets this as an error.
    pub fault: Option<String>,
    /// Of a run across shards: how many shards got its plan, and how many finished
    /// their part (0 and 0 for a run of one shard).
    pub shards_received: usize,
    pub shards_completed: usize,
    /// When it started running (None until then): its total time, and its progress.
    pub started: Option<std::time::Instant>,
}

impl ExecState {
    /// When it started running, in unix milliseconds (0 until then). Derived from the
    /// instant at reply time, so starting an execution reads one clock, not two.
    pub fn started_at_ms(&self) -> u64 {
        let (Some(t), Ok(now)) = (
            self.started,
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH),
        ) else {
            return 0;
        };
        now.saturating_sub(t.elapsed()).as_millis() as u64
    }

    /// Milliseconds it has run: its total once finished, the time so far while it runs.
    pub fn duration_ms(&self) -> u64 {
        match (self.status.is_finished(), self.started) {
            (true, _) => self.total_ms,
            (false, Some(t)) => t.elapsed().as_millis() as u64,
            (false, None) => 0,
        }
    }
}

/// What RG.ABORTEXECUTION did.
#[derive(Debug, PartialEq)]
pub enum Abort {
    AlreadyFinished,
    /// It had not started: it is finished now.
    FinishedHere,
    /// It runs and will stop at its next check.
    Stopping,
}

/// Whom a run acts for: the user whose permissions its calls get (the owner of its
/// code), the user that started it when that is someone else (a client running a
/// guest's job: both must be allowed), and the database its calls act on.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAs {
    pub user: Arc<str>,
    pub invoker: Option<Arc<str>>,
    pub db: i32,
}

impl RunAs {
    pub fn new(user: &str, db: i32) -> RunAs {
        RunAs {
            user: user.into(),
            invoker: None,
            db,
        }
    }

    /// The same, also acting for `invoker` (a client asking for the run by name), unless
    /// that is the owner itself.
    pub fn invoked_by(mut self, invoker: Option<Arc<str>>) -> RunAs {
        self.invoker = invoker.filter(|u| *u != self.user);
        self
    }

    /// The users whose permissions every call of the run must satisfy.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.user).chain(self.invoker.as_deref())
    }
}

/// Called once when the execution finishes (e.g. to answer a blocked client).
pub type Waiter = Box<dyn FnOnce(&ExecState) + Send>;

pub struct Execution {
    pub id: String,
    pub seq: u64,
    /// The registration whose event started it, if any.
    pub registration: Option<String>,
    pub run_as: RunAs,
    state: Mutex<ExecState>,
    waiters: Mutex<Vec<Waiter>>,
    abort_requested: Arc<AtomicBool>,
    /// Records read so far (progress of a running execution).
    records_read: AtomicU64,
    /// How to interrupt user code running right now (set by a host while it runs a step).
    interrupt: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Host resources that live as long as the execution runs (e.g. a Python session).
    keep_alive: Mutex<Vec<Box<dyn Any + Send>>>,
    /// Forgotten once its waiting client is answered: it never counts against the
    /// registry's bounds, so it never pushes out an execution that is kept.
    transient: AtomicBool,
}

/// How many executions this shard made and how they ended, since it started (INFO).
pub struct Outcomes {
    pub created: AtomicU64,
    /// Ended with no error.
    pub done: AtomicU64,
    /// Ended with errors (a record's, or the run's own).
    pub failed: AtomicU64,
    pub aborted: AtomicU64,
}

impl Outcomes {
    const fn new() -> Outcomes {
        Outcomes {
            created: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
        }
    }
}

/// This shard's outcomes: plain counters, read without any lock (even in a crash report).
pub static OUTCOMES: Outcomes = Outcomes::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Execution {
    pub fn new(
        id: String,
        seq: u64,
        registration: Option<String>,
        steps: Vec<StepReport>,
        run_as: RunAs,
    ) -> Self {
        OUTCOMES.created.fetch_add(1, Ordering::Relaxed);
        Execution {
            id,
            seq,
            registration,
            run_as,
            state: Mutex::new(ExecState {
                status: Status::Created,
                results: Vec::new(),
                errors: Vec::new(),
                steps,
                total_ms: 0,
                read_ms: 0,
                entries: Vec::new(),
                fault: None,
                shards_received: 0,
                shards_completed: 0,
                started: None,
            }),
            waiters: Mutex::new(Vec::new()),
            abort_requested: Arc::new(AtomicBool::new(false)),
            records_read: AtomicU64::new(0),
            interrupt: Mutex::new(None),
            keep_alive: Mutex::new(Vec::new()),
            transient: AtomicBool::new(false),
        }
    }

    /// Marks an execution whose client waits for its results: it is forgotten once they
    /// are sent.
    pub fn mark_transient(&self) {
        self.transient.store(true, Ordering::Release);
    }

    pub fn is_transient(&self) -> bool {
        self.transient.load(Ordering::Acquire)
    }

    pub fn state(&self) -> MutexGuard<'_, ExecState> {
        lock(&self.state)
    }

    pub fn status(&self) -> Status {
        self.state().status
    }

    /// Moves from created to running; false when it was aborted before it started.
    pub fn start(&self) -> bool {
        let mut st = self.state();
        if st.status != Status::Created || self.abort_requested() {
            return false;
        }
        st.status = Status::Running;
        st.started = Some(std::time::Instant::now());
        true
    }

    /// Counts records its reader gave (progress).
    pub fn add_read(&self, n: usize) {
        self.records_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    pub fn keep_alive(&self, resource: Box<dyn Any + Send>) {
        lock(&self.keep_alive).push(resource);
    }

    /// The flag RG.ABORTEXECUTION raises, for code that polls it (a guest's epoch check).
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort_requested.clone()
    }

    pub fn abort_requested(&self) -> bool {
        self.abort_requested.load(Ordering::Acquire)
    }

    /// Asks a created or running execution to stop.
    pub fn request_abort(&self) -> Abort {
        let status = self.status();
        if status.is_finished() {
            return Abort::AlreadyFinished;
        }
        self.abort_requested.store(true, Ordering::Release);
        {
            // Held while interrupting, so a worker that clears the interrupt when it is
            // done is never hit by one that arrives later.
            let interrupt = lock(&self.interrupt);
            if let Some(interrupt) = interrupt.as_ref() {
                interrupt();
            }
        }
        if status == Status::Created {
            // Never started: it will not run, so it finishes here.
            self.finish(
                Vec::new(),
                vec!["Execution was aborted".into()],
                Status::Aborted,
                0,
                0,
                Vec::new(),
            );
            return Abort::FinishedHere;
        }
        Abort::Stopping
    }

    pub fn set_interrupt(&self, interrupt: Option<Arc<dyn Fn() + Send + Sync>>) {
        *lock(&self.interrupt) = interrupt;
    }

    /// Runs `waiter` when the execution finishes (at once if it already has).
    pub fn on_finish(&self, waiter: Waiter) {
        {
            let st = self.state();
            if !st.status.is_finished() {
                lock(&self.waiters).push(waiter);
                return;
            }
        }
        waiter(&self.state());
    }

    /// Records the outcome, releases host resources and answers the waiters. Only the
    /// first call counts.
    pub fn finish(
        &self,
        results: Vec<Value>,
        errors: Vec<String>,
        status: Status,
        total_ms: u64,
        read_ms: u64,
        step_nanos: Vec<u64>,
    ) {
        if self.record(results, errors, status, total_ms, read_ms, step_nanos) {
            self.answer_waiters();
        }
    }

    /// Records the outcome and releases host resources; false if already finished.
    pub fn record(
        &self,
        results: Vec<Value>,
        errors: Vec<String>,
        status: Status,
        total_ms: u64,
        read_ms: u64,
        step_nanos: Vec<u64>,
    ) -> bool {
        {
            let mut st = self.state();
            if st.status.is_finished() {
                return false;
            }
            let ended = match status {
                Status::Aborted => &OUTCOMES.aborted,
                _ if errors.is_empty() => &OUTCOMES.done,
                _ => &OUTCOMES.failed,
            };
            ended.fetch_add(1, Ordering::Relaxed);
            st.status = status;
            st.results = results;
            st.errors = errors;
            st.total_ms = total_ms;
            st.read_ms = read_ms;
            for (report, nanos) in st.steps.iter_mut().zip(step_nanos) {
                report.nanos = nanos;
            }
        }
        self.set_interrupt(None);
        let resources = std::mem::take(&mut *lock(&self.keep_alive));
        drop(resources);
        true
    }

    /// Answers everything waiting for the (recorded) outcome.
    pub fn answer_waiters(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        let st = self.state();
        for waiter in waiters {
            waiter(&st);
        }
    }

    pub fn set_entries(&self, entries: Vec<(&'static str, u64)>) {
        self.state().entries = entries;
    }

    pub fn set_fault(&self, fault: Option<String>) {
        self.state().fault = fault;
    }
}
