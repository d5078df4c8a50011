//! The stage runner: one shard's part of an execution, run stage by stage into sinks.
//!
//! A stage runs batch by batch: the reader (first stage) or the stage's inbox (later
//! stages) feeds its operators, and what comes out goes into the stage's **sink**: the
//! next stage's inbox on the shard that owns each record's key (repartition), on the
//! initiator (collect), or, after the last stage, the initiator's results. A stage starts
//! when its input is complete: this shard has finished the stage before it, and every
//! shard that sends to it has sent its last batch. Until then the stage is a state, not a
//! thread: **no worker ever waits** for another stage, another shard or the network.
//! Batches from other shards come in through [`Run::deliver`]; whoever completes a
//! stage's input schedules it as a new pool job (or, on the thread that just finished
//! the stage before it, simply goes on).
//!
//! On one shard ([`Alone`]) every sink is this shard's own inbox, so a run goes from
//! stage to stage on one thread, exactly as a single loop would.
//!
//! Every resource a run holds while it works is a guard ([`Shell::enter`], the lock slice
//! given back by [`Shell::end_batch`] on every exit): a panic anywhere in a run (reader,
//! step, host call, reply) is caught here, fails that execution with a clear error and
//! answers its waiters; a run dropped before it finished fails the same way.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::compile::Stage;
use super::execution::{Execution, Status};
use super::fault::{self, Point};
use super::operator::{Operator, RunCtx, Stop};
use super::plan::{Exchange, Host};
use super::reader::{Reader, VecReader};
use super::value::Value;

/// Runs once the execution has ended, on the thread that ended it.
pub type Then = Box<dyn FnOnce(&Execution) + Send>;

/// The shards taking part in one execution, and the way to reach them.
pub trait Peers: Send + Sync {
    /// How many shards run the execution.
    fn count(&self) -> usize;
    /// This shard's index among them.
    fn me(&self) -> usize;
    /// The shard that started the execution (it gathers collected records and results).
    fn initiator(&self) -> usize;
    /// The shard that owns `key`.
    fn owner(&self, key: &[u8]) -> usize;
    /// Hands a batch to the same execution on shard `to` (never this shard).
    fn send(&self, to: usize, batch: Inbound);
}

/// One execution on one shard: every sink is local.
pub struct Alone;

impl Peers for Alone {
    fn count(&self) -> usize {
        1
    }
    fn me(&self) -> usize {
        0
    }
    fn initiator(&self) -> usize {
        0
    }
    fn owner(&self, _key: &[u8]) -> usize {
        0
    }
    fn send(&self, _to: usize, _batch: Inbound) {}
}

/// A batch moving into a stage's inbox (or, at `stage == stages.len()`, the results).
#[derive(Debug, Clone)]
pub struct Inbound {
    pub stage: usize,
    pub from: usize,
    pub records: Vec<Value>,
    /// On the sender's last batch for this stage: how many batches it sent in all (this
    /// one included), so batches that arrive in any order are counted complete.
    pub last_of: Option<u64>,
    /// The sender's errors, with its last batch of the results.
    pub errors: Vec<String>,
    /// On a last batch: the sender's part was given up (a silent or restarted shard, a
    /// topology change), so the whole run ends aborted with this reason.
    pub gave_up: Option<String>,
}

/// What the runner needs from the shard it runs on.
pub trait Shell: Send + Sync {
    fn batch_size(&self) -> usize;
    fn profile(&self) -> bool;
    /// Sets this thread up to work for `exec` (who it acts for, the current-execution
    /// marker); undone when the returned guard drops.
    fn enter(&self, exec: &Arc<Execution>) -> Box<dyn Any>;
    /// A batch ended: the Redis lock slice is given back here.
    fn end_batch(&self);
    /// A panic is unwinding through the run: give back everything held, atomic blocks
    /// user code left open included.
    fn abandon(&self) {
        self.end_batch()
    }
    /// The outcome is recorded, before waiting clients are answered (the registry is
    /// trimmed there, so clients never see more than its limits).
    fn after_record(&self, exec: &Execution);
    /// Runs `job` on the worker pool.
    fn spawn(&self, job: Box<dyn FnOnce() + Send>);
}

/// Gives the lock slice back however the scope ends (a return, an error, a panic).
struct SliceGuard<'a>(&'a dyn Shell);

impl Drop for SliceGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        } else {
            self.0.end_batch();
        }
    }
}

/// Per sender: batches received, and how many there are in all once its last came.
#[derive(Default, Clone, Copy)]
struct Sender {
    received: u64,
    total: Option<u64>,
}

impl Sender {
    fn complete(&self) -> bool {
        self.total == Some(self.received)
    }
}

/// A stage's input (or the results) as it arrives.
struct Inbox {
    records: Vec<Value>,
    /// Expected senders by shard index (None: that shard sends nothing here).
    senders: Vec<Option<Sender>>,
    errors: Vec<String>,
}

impl Inbox {
    fn complete(&self) -> bool {
        self.senders.iter().flatten().all(Sender::complete)
    }
}

/// How the output of a stage leaves it.
#[derive(Clone, Copy, PartialEq)]
enum SinkKind {
    /// Each record to the shard that owns its key.
    Partition,
    /// Every record to the initiator (collect, and the results after the last stage).
    Gather,
}

struct State {
    reader: Option<Box<dyn Reader>>,
    /// Stages not yet run (taken out while one runs).
    stages: Vec<Option<Stage>>,
    /// Index `k` feeds stage `k` (index 0 is unused: the reader feeds stage 0); the last
    /// one holds the results.
    inbox: Vec<Inbox>,
    /// Batches sent so far from each stage to each shard.
    sent: Vec<Vec<u64>>,
    /// The stage that runs next (`stages.len()`: all ran).
    next: usize,
    running: bool,
    finished: bool,
    cx: Option<RunCtx>,
    stop: Option<Stop>,
    /// A fault (a panic) that failed the run: the reply is an error.
    fault: Option<String>,
    /// Why the run was ended from outside before its input was complete (a silent
    /// shard, a restarted one): it ends aborted, with the results gathered so far.
    gave_up: Option<String>,
    /// The execution started (`Execution::start`, which notes when).
    started: bool,
    read_nanos: u64,
    step_nanos: Vec<u64>,
    /// The run left the thread that started it to finish its stage on the pool (see
    /// [`Operator::parked`]): it never moves again.
    moved: bool,
}

/// How a stage's run on this thread ended.
enum Flow {
    /// The stage is over: its sink has everything.
    Done,
    /// Its input is consumed, but records wait on futures the thread that started a
    /// sync run must not wait for: the stage finishes on the pool.
    Moved,
}

/// One shard's part of one execution.
pub struct Run {
    exec: Arc<Execution>,
    shell: Arc<dyn Shell>,
    peers: Arc<dyn Peers>,
    host: Option<Arc<dyn Host>>,
    kinds: Vec<SinkKind>,
    then: Mutex<Option<Then>>,
    state: Mutex<State>,
}

pub(super) fn panic_text(panic: &(dyn Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!(
        "the execution failed on an internal error (a bug was caught, Redis keeps running): {what}"
    )
}

impl Run {
    /// A run of `stages` over `reader` for `exec`. `host` runs the plan's user steps.
    pub fn new(
        exec: Arc<Execution>,
        reader: Box<dyn Reader>,
        stages: Vec<Stage>,
        host: Option<Arc<dyn Host>>,
        shell: Arc<dyn Shell>,
        peers: Arc<dyn Peers>,
    ) -> Arc<Run> {
        let n = stages.len();
        let count = peers.count().max(1);
        let me = peers.me();
        let kinds: Vec<SinkKind> = (0..n)
            .map(|k| match stages[k].exchange {
                Some(Exchange::Repartition(_)) if k + 1 < n => SinkKind::Partition,
                _ => SinkKind::Gather,
            })
            .collect();
        let inbox = (0..=n)
            .map(|k| {
                let senders = match k.checked_sub(1).map(|j| kinds[j]) {
                    None => vec![None; count],
                    Some(SinkKind::Partition) => vec![Some(Sender::default()); count],
                    Some(SinkKind::Gather) if me == peers.initiator() => {
                        vec![Some(Sender::default()); count]
                    }
                    Some(SinkKind::Gather) => {
                        let mut s = vec![None; count];
                        s[me] = Some(Sender::default());
                        s
                    }
                };
                Inbox {
                    records: Vec::new(),
                    senders,
                    errors: Vec::new(),
                }
            })
            .collect();
        let steps = stages
            .iter()
            .map(|s| s.op_steps.iter().flatten().max().map_or(0, |m| m + 1))
            .max()
            .unwrap_or(0);
        Arc::new(Run {
            exec,
            shell,
            host,
            kinds,
            then: Mutex::new(None),
            state: Mutex::new(State {
                reader: Some(reader),
                stages: stages.into_iter().map(Some).collect(),
                inbox,
                sent: vec![vec![0; count]; n],
                next: 0,
                running: false,
                finished: false,
                cx: None,
                stop: None,
                fault: None,
                gave_up: None,
                started: false,
                read_nanos: 0,
                step_nanos: vec![0; steps],
                moved: false,
            }),
            peers,
        })
    }

    pub fn execution(&self) -> &Arc<Execution> {
        &self.exec
    }

    /// `then` runs once the execution has ended, on the thread that ended it.
    pub fn then(&self, then: Then) {
        *lock(&self.then) = Some(then);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Runs what is ready here, on this thread (sync mode, the first stage of a job).
    pub fn work_here(self: &Arc<Self>) {
        let _entered = self.shell.enter(&self.exec);
        self.work();
    }

    /// Runs what is ready as a job on the worker pool.
    pub fn spawn(self: &Arc<Self>) {
        let run = self.clone();
        self.shell.spawn(Box::new(move || run.work_on_worker()));
    }

    /// Runs what is ready here, on a pool worker.
    pub fn work_on_worker(self: &Arc<Self>) {
        let _entered = self.shell.enter(&self.exec);
        let _host = self.host.as_ref().map(|h| h.enter_worker(&self.exec));
        self.work();
    }

    /// A batch from another shard. When it completes the input of the stage that runs
    /// next, that stage is scheduled on the pool.
    pub fn deliver(self: &Arc<Self>, batch: Inbound) {
        let ready = {
            let mut st = self.state();
            accept(&mut st, batch);
            !st.finished && !st.running && (self.ready(&st) || st.stop.is_some())
        };
        if ready {
            self.spawn();
        }
    }

    /// Ends the run early from outside (another shard went silent or restarted): it
    /// stops after the batch it is running, if any, and ends aborted with `why` and the
    /// results gathered so far. Nothing happens to a run that already ended.
    pub fn give_up(self: &Arc<Self>, why: String) {
        let idle = {
            let mut st = self.state();
            if st.finished || st.gave_up.is_some() {
                return;
            }
            st.gave_up = Some(why);
            st.stop.get_or_insert(Stop::Aborted);
            !st.running
        };
        if idle {
            self.spawn();
        } else {
            // The running stage stops at its next batch, as for RG.ABORTEXECUTION.
            self.exec
                .abort_flag()
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether a stage of the run is running now (it is not waiting for input).
    pub fn busy(&self) -> bool {
        self.state().running
    }

    /// Whether the run has ended.
    pub fn finished(&self) -> bool {
        self.state().finished
    }

    /// Whether the stage that runs next (or the end) has all its input.
    fn ready(&self, st: &State) -> bool {
        let k = st.next;
        k == 0 || st.inbox[k].complete()
    }

    fn work(self: &Arc<Self>) {
        loop {
            let (k, stage, input, mut cx, may_move) = {
                let mut st = self.state();
                if st.finished || st.running || (st.stop.is_none() && !self.ready(&st)) {
                    return;
                }
                if st.next == 0 && !st.started {
                    if !self.exec.start() {
                        // Aborted before it started: RG.ABORTEXECUTION recorded it.
                        st.finished = true;
                        drop(st);
                        self.run_then();
                        return;
                    }
                    st.started = true;
                    st.cx = Some(RunCtx::new(self.shell.profile()));
                }
                let k = st.next;
                let n = st.stages.len();
                if st.stop.is_some() && k < n && st.started {
                    // Ended from outside between stages: the shards waiting for this
                    // one's batches still get its last ones (with the reason).
                    gather_partial(&mut st);
                    st.next = n;
                    for slot in &mut st.stages[k..] {
                        *slot = None;
                    }
                    drop(st);
                    for j in k..n {
                        self.close_sink(j);
                    }
                    continue;
                }
                if k == n || st.stop.is_some() {
                    drop(st);
                    self.finish();
                    return;
                }
                if self.gathered_elsewhere(k) {
                    // Its input went to the initiator: the stage runs there only (an
                    // aggregate over nothing here would add a record of its own).
                    st.stages[k] = None;
                    st.next = k + 1;
                    drop(st);
                    self.close_sink(k);
                    continue;
                }
                let input: Box<dyn Reader> = match k {
                    0 => st
                        .reader
                        .take()
                        .unwrap_or_else(|| Box::new(VecReader::new(Vec::new()))),
                    _ => Box::new(VecReader::new(std::mem::take(&mut st.inbox[k].records))),
                };
                // Errors other shards met on the records they sent here (e.g. a record
                // that could not travel) are this run's errors from now on.
                let carried = std::mem::take(&mut st.inbox[k].errors);
                let Some(stage) = st.stages[k].take() else {
                    return;
                };
                st.running = true;
                let mut cx = st.cx.take().unwrap_or_else(|| RunCtx::new(false));
                cx.errors.extend(carried);
                (k, stage, input, cx, !st.moved)
            };
            let mut stage = stage;
            let mut input = input;
            let mut read_nanos = 0u64;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let _slice = SliceGuard(&*self.shell);
                let input = input.as_mut();
                self.run_stage(k, &mut stage, input, &mut cx, &mut read_nanos, may_move)
            }));
            if let Ok(Ok(Flow::Moved)) = outcome {
                // The stage, its operators and what they hold go to a worker as they are.
                drop(input);
                let mut st = self.state();
                st.stages[k] = Some(stage);
                st.cx = Some(cx);
                st.read_nanos += read_nanos;
                st.moved = true;
                st.running = false;
                drop(st);
                self.spawn();
                return;
            }
            let outcome = match outcome {
                Ok(result) => result.map(|_| ()).map_err(|stop| (stop, None)),
                Err(panic) => {
                    let text = panic_text(&*panic);
                    Err((Stop::Failed(text.clone()), Some(text)))
                }
            };
            // Operators may hold host objects and guest instances: they go now, whatever
            // happened, before the outcome releases the host's resources.
            let nanos: Vec<(usize, u64)> = stage
                .ops
                .iter()
                .zip(&stage.op_steps)
                .flat_map(|(op, indices)| indices.iter().copied().zip(op.step_nanos()))
                .collect();
            drop(input);
            drop(stage);
            let owed = {
                let mut st = self.state();
                st.running = false;
                st.cx = Some(cx);
                if k == 0 {
                    st.read_nanos += read_nanos;
                }
                for (i, n) in nanos {
                    if let Some(slot) = st.step_nanos.get_mut(i) {
                        *slot = n;
                    }
                }
                match outcome {
                    Ok(()) => {
                        st.next = k + 1;
                        k..k + 1
                    }
                    Err((stop, fault)) => {
                        st.stop = Some(stop);
                        st.fault = st.fault.take().or(fault);
                        let n = st.stages.len();
                        st.next = n;
                        for slot in &mut st.stages[k + 1..] {
                            *slot = None;
                        }
                        // Every shard waiting for this one still gets its last batches.
                        k..n
                    }
                }
            };
            for j in owed {
                self.close_sink(j);
            }
        }
    }

    /// Whether stage `k` takes its input gathered on another shard (collect).
    fn gathered_elsewhere(&self, k: usize) -> bool {
        k > 0
            && self.kinds[k - 1] == SinkKind::Gather
            && self.peers.count() > 1
            && self.peers.me() != self.peers.initiator()
    }

    /// Runs stage `k` over `input` into its sink. With `may_move`, a stage whose
    /// operators parked records (a sync run's futures) stops once its input is consumed,
    /// to finish on the pool.
    fn run_stage(
        &self,
        k: usize,
        stage: &mut Stage,
        input: &mut dyn Reader,
        cx: &mut RunCtx,
        read_nanos: &mut u64,
        may_move: bool,
    ) -> Result<Flow, Stop> {
        let batch_size = self.shell.batch_size().max(1);
        loop {
            if self.exec.abort_requested() {
                return Err(Stop::Aborted);
            }
            let t = Instant::now();
            if k == 0 {
                fault::hit(Point::Reader);
            }
            let batch = input.next_batch(batch_size);
            *read_nanos += t.elapsed().as_nanos() as u64;
            let batch = match batch {
                Ok(Some(batch)) => {
                    if k == 0 {
                        self.exec.add_read(batch.len());
                    }
                    batch
                }
                Ok(None) => break,
                Err(e) => {
                    self.shell.end_batch();
                    if self.exec.abort_requested() {
                        return Err(Stop::Aborted);
                    }
                    cx.errors.push(format!("{e:#}"));
                    break;
                }
            };
            let out = push_through(&mut stage.ops, 0, cx, batch);
            self.shell.end_batch();
            self.sink(k, stage, cx, out?)?;
        }
        if may_move && stage.ops.iter().any(|op| op.parked()) {
            return Ok(Flow::Moved);
        }
        for i in 0..stage.ops.len() {
            let flushed = stage.ops[i].finish(cx);
            let flushed = flushed.and_then(|f| push_through(&mut stage.ops, i + 1, cx, f));
            self.shell.end_batch();
            self.sink(k, stage, cx, flushed?)?;
        }
        Ok(Flow::Done)
    }

    /// Routes a stage's output: to this shard's next inbox, or out to other shards.
    fn sink(
        &self,
        k: usize,
        stage: &mut Stage,
        cx: &mut RunCtx,
        records: Vec<Value>,
    ) -> Result<(), Stop> {
        if records.is_empty() {
            return Ok(());
        }
        let count = self.peers.count();
        let me = self.peers.me();
        let mut out: Vec<Vec<Value>> = vec![Vec::new(); count.max(1)];
        match self.kinds[k] {
            _ if count <= 1 => out[0] = records,
            SinkKind::Gather => out[self.peers.initiator()] = records,
            SinkKind::Partition => {
                let keys = match stage.extract.as_mut() {
                    Some(op) => {
                        let keys = op.push(cx, records.clone())?;
                        if keys.len() != records.len() {
                            return Err(Stop::Failed(
                                "repartition: the key extractor must return one key per record"
                                    .into(),
                            ));
                        }
                        Some(keys)
                    }
                    None => None,
                };
                for (i, record) in records.into_iter().enumerate() {
                    let key = match &keys {
                        Some(keys) => key_of(&keys[i]),
                        None => key_of(&record),
                    };
                    let to = key.map_or(self.peers.initiator(), |k| self.peers.owner(&k));
                    out[to.min(count - 1)].push(record);
                }
            }
        }
        for (to, records) in out.into_iter().enumerate() {
            if records.is_empty() {
                continue;
            }
            let parts = if to == me {
                vec![records]
            } else {
                by_bytes(records, BATCH_BYTES)
            };
            for records in parts {
                let batch = Inbound {
                    stage: k + 1,
                    from: me,
                    records,
                    last_of: None,
                    errors: Vec::new(),
                    gave_up: None,
                };
                self.send(to, batch);
            }
        }
        Ok(())
    }

    /// Sends `batch` to shard `to` (this shard: straight into its inbox).
    fn send(&self, to: usize, mut batch: Inbound) {
        {
            let mut st = self.state();
            let sent = &mut st.sent[batch.stage - 1][to];
            *sent += 1;
            if let Some(total) = batch.last_of.as_mut() {
                *total = *sent;
            }
            if to == self.peers.me() {
                accept(&mut st, batch);
                return;
            }
        }
        self.peers.send(to, batch);
    }

    /// Stage `k` is over on this shard: every shard its sink feeds gets the last batch.
    fn close_sink(&self, k: usize) {
        let me = self.peers.me();
        let count = self.peers.count().max(1);
        let last = k + 1 == self.kinds.len();
        let targets: Vec<usize> = match self.kinds[k] {
            SinkKind::Partition => (0..count).collect(),
            SinkKind::Gather => vec![if count <= 1 {
                0
            } else {
                self.peers.initiator()
            }],
        };
        // This shard's own part of the last stage feeds itself when it is not the
        // initiator: the end of its run needs that mark too.
        let mut targets = targets;
        if !targets.contains(&me) {
            targets.push(me);
        }
        let gave_up = self.state().gave_up.clone();
        for to in targets {
            let errors = if last && to != me {
                // The initiator reports every shard's errors.
                self.state()
                    .cx
                    .as_ref()
                    .map_or_else(Vec::new, |cx| cx.errors.clone())
            } else {
                Vec::new()
            };
            self.send(
                to,
                Inbound {
                    stage: k + 1,
                    from: me,
                    records: Vec::new(),
                    last_of: Some(0),
                    errors,
                    gave_up: if to == me { None } else { gave_up.clone() },
                },
            );
        }
    }

    /// Records the outcome and answers the waiters.
    fn finish(&self) {
        let (outcome, fault, gave_up, results, errors, cx, read_nanos, step_nanos) = {
            let mut st = self.state();
            if st.finished {
                return;
            }
            st.finished = true;
            let n = st.stages.len();
            if st.gave_up.is_some() {
                gather_partial(&mut st);
            }
            let results = std::mem::take(&mut st.inbox[n].records);
            let errors = std::mem::take(&mut st.inbox[n].errors);
            (
                st.stop.take(),
                st.fault.take(),
                st.gave_up.take(),
                results,
                errors,
                st.cx.take().unwrap_or_else(|| RunCtx::new(false)),
                st.read_nanos,
                std::mem::take(&mut st.step_nanos),
            )
        };
        let mut cx = cx;
        cx.errors.extend(errors);
        record_ending(
            &self.exec,
            &*self.shell,
            Ending {
                results,
                cx,
                stop: outcome,
                fault,
                gave_up,
                read_nanos,
                step_nanos,
            },
        );
        self.run_then();
    }

    fn run_then(&self) {
        let then = lock(&self.then).take();
        if let Some(then) = then {
            run_then(&*self.shell, &self.exec, then);
        }
    }
}

/// Runs an execution's `then` with the lock slice given back after it, whatever happens.
pub(super) fn run_then(shell: &dyn Shell, exec: &Execution, then: Then) {
    let _slice = SliceGuard(shell);
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| then(exec))) {
        eprintln!("gears: {}", panic_text(&*panic));
    }
}

/// How one shard's part of an execution ended.
pub(super) struct Ending {
    pub results: Vec<Value>,
    /// Its context, with every error met on the way.
    pub cx: RunCtx,
    pub stop: Option<Stop>,
    /// A fault (a panic) that failed the run.
    pub fault: Option<String>,
    /// Why the run was ended from outside (it ends aborted with what it gathered).
    pub gave_up: Option<String>,
    pub read_nanos: u64,
    pub step_nanos: Vec<u64>,
}

/// Records how `exec` ended; if that recorded its outcome (the first one does), the
/// registry is trimmed, then the waiters are answered.
pub(super) fn record_ending(exec: &Execution, shell: &dyn Shell, e: Ending) {
    let replies = catch_unwind(AssertUnwindSafe(|| {
        fault::hit(Point::Reply);
        replies(e.results)
    }));
    let (results, fault) = match replies {
        Ok(results) => (results, e.fault),
        Err(panic) => (Vec::new(), Some(panic_text(&*panic))),
    };
    let mut all_errors = e.cx.errors;
    let (results, status) = match (e.stop, &fault) {
        (_, None) if e.gave_up.is_some() => {
            all_errors.extend(e.gave_up);
            (results, Status::Aborted)
        }
        (_, Some(fault)) => {
            all_errors.push(fault.clone());
            (Vec::new(), Status::Done)
        }
        (None, None) => (results, Status::Done),
        (Some(Stop::Aborted), None) => {
            all_errors.push("Execution was aborted".into());
            (Vec::new(), Status::Aborted)
        }
        (Some(Stop::Failed(msg)), None) => {
            all_errors.push(msg);
            (Vec::new(), Status::Done)
        }
    };
    exec.set_entries(e.cx.entries);
    exec.set_fault(fault);
    // From the execution's own start (0 for one that never started).
    let total_ms = exec
        .state()
        .started
        .map_or(0, |t| t.elapsed().as_millis() as u64);
    let recorded = exec.record(
        results,
        all_errors,
        status,
        total_ms,
        e.read_nanos / 1_000_000,
        e.step_nanos,
    );
    answer(exec, shell, recorded);
}

/// After `Execution::record`: if it recorded the outcome, the registry is trimmed, then
/// the waiters are answered.
fn answer(exec: &Execution, shell: &dyn Shell, recorded: bool) {
    if recorded {
        shell.after_record(exec);
        exec.answer_waiters();
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A run that never got to its end (its job was lost, a peer never answered and
        // the run was let go) still ends its execution, so no client waits for ever.
        let finished = lock(&self.state).finished;
        if !finished {
            let recorded = self.exec.record(
                Vec::new(),
                vec!["the execution was dropped before it finished (a bug was caught)".into()],
                Status::Done,
                0,
                0,
                Vec::new(),
            );
            answer(&self.exec, &*self.shell, recorded);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// About the most bytes of records in one batch to another shard: big records make
/// smaller batches, so one batch stays one modest frame of the link.
const BATCH_BYTES: usize = 1 << 20;

/// `records` cut into runs of about `limit` bytes (at least one record each).
fn by_bytes(records: Vec<Value>, limit: usize) -> Vec<Vec<Value>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut bytes = 0;
    for r in records {
        let size = r.approx_size();
        if !part.is_empty() && bytes + size > limit {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += size;
        part.push(r);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// A run given up returns what it gathered: records waiting before the stages that
/// only pass them on (a collect's) join the results.
fn gather_partial(st: &mut State) {
    let n = st.stages.len();
    let mut waiting = Vec::new();
    for k in (st.next..n).rev() {
        match &st.stages[k] {
            Some(stage) if stage.ops.is_empty() => {
                let mut earlier = std::mem::take(&mut st.inbox[k].records);
                earlier.append(&mut waiting);
                waiting = earlier;
            }
            _ => break,
        }
    }
    waiting.append(&mut st.inbox[n].records);
    st.inbox[n].records = waiting;
}

/// Puts an inbound batch into its inbox.
fn accept(st: &mut State, batch: Inbound) {
    let Some(inbox) = st.inbox.get_mut(batch.stage) else {
        return;
    };
    let Some(Some(sender)) = inbox.senders.get_mut(batch.from) else {
        return;
    };
    sender.received += 1;
    if let Some(total) = batch.last_of {
        sender.total = Some(total);
    }
    if let Some(why) = batch.gave_up {
        // Another shard's part was given up: so is this one (it ends with what it has).
        st.gave_up.get_or_insert(why);
        st.stop.get_or_insert(Stop::Aborted);
    }
    inbox.records.extend(batch.records);
    inbox.errors.extend(batch.errors);
}

/// The key a record is routed by: a string or bytes as itself, a map's 'key' field.
fn key_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Str(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.clone()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
            Value::Str(k) if k == "key" => key_of(v),
            _ => None,
        }),
        Value::Host(h) => h.key().and_then(key_of),
        _ => None,
    }
}

/// Pushes one batch through `ops[from..]`.
fn push_through(
    ops: &mut [Box<dyn Operator>],
    from: usize,
    cx: &mut RunCtx,
    mut batch: Vec<Value>,
) -> Result<Vec<Value>, Stop> {
    for op in ops[from..].iter_mut() {
        if batch.is_empty() {
            break;
        }
        fault::hit(Point::Step);
        batch = op.push(cx, batch)?;
    }
    Ok(batch)
}

/// Host objects left in the results become replies by their host's rules.
fn replies(results: Vec<Value>) -> Vec<Value> {
    if !results.iter().any(|v| matches!(v, Value::Host(_))) {
        return results;
    }
    results
        .into_iter()
        .map(|v| match v {
            Value::Host(h) => h.to_reply(),
            other => other,
        })
        .collect()
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
