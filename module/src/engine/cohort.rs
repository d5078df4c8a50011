//! A few async events of one registration run through one entry into the runtime.
//!
//! A drain (`triggers::drain`) takes a registration's async events a few at a time. Run
//! one by one, each event compiles the plan, opens its operator and enters the language
//! runtime (the GIL, for Python) for a batch of one record or so. A *cohort* runs such
//! a chunk with the plan compiled once and its operator entered once
//! ([`Operator::push_each`]), and every event still is an execution of its own, as a
//! [`Run`](super::run::Run) would make it: it starts (or not, when aborted before), its
//! reader's records are its own, its steps act for its own user and database and are
//! marked as its own (RG.ABORTEXECUTION stops it alone), and it ends, as soon as its
//! steps are done, with its own results, errors, statistics, waiters and `then`.
//!
//! What stays the same: everything a user can observe of one event's execution, and the
//! order of the events' steps (one event's steps end before the next one's start).
//! What differs: the events' records are read before the first of them runs (an async
//! run reads the value when it runs, not when the event happened: the cohort reads a
//! little earlier, still after every event of the chunk happened); an event's total time
//! covers its wait for the events before it; the `then`s (a stream batch's
//! acknowledgement) run once the operator has let go of the runtime, so never inside the
//! GIL, where waiting for the Redis lock could deadlock with the main thread.
//! When it is off: plans of more than one operator, plans that move records (a
//! repartition), profiling (a run's step timings are its own): those events run one by
//! one.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::backlog::{Backlog, InProgress, Pending};
use super::compile::{without_exchanges, Stage};
use super::execution::Execution;
use super::fault::{self, Point};
use super::operator::{Events, Operator, RunCtx, Stop};
use super::plan::{Exchange, Host, Step, StepKind};
use super::reader::Reader;
use super::run::{panic_text, record_ending, run_then, Ending, Shell, Then};
use super::value::Value;

/// Whether a plan's steps compile into what a cohort runs (`single_operator`): one run of
/// host steps, or one native step, and no exchange but collects. Told from the steps, so
/// that a plan of another shape is not compiled for nothing.
pub fn fits(steps: &[Step]) -> bool {
    let mut ops = 0;
    let mut in_group = false;
    for step in steps {
        match &step.kind {
            StepKind::Host(_) if in_group => {}
            StepKind::Host(_) => {
                in_group = true;
                ops += 1;
            }
            StepKind::Native(_) => {
                in_group = false;
                ops += 1;
            }
            StepKind::Exchange(Exchange::Collect) => in_group = false,
            StepKind::Exchange(_) => return false,
        }
    }
    ops == 1
}

/// The one operator of a plan that a cohort can run, when the plan is of that shape: one
/// operator, and no exchange but collects (a run that moves no records gathers them
/// here, so its stages are one); None otherwise.
pub fn single_operator(stages: Vec<Stage>) -> Option<Box<dyn Operator>> {
    let moves = stages
        .iter()
        .any(|s| matches!(s.exchange, Some(Exchange::Repartition(_))) || s.extract.is_some());
    if moves {
        return None;
    }
    let mut stage = without_exchanges(stages).pop()?;
    if stage.ops.len() != 1 {
        return None;
    }
    stage.ops.pop()
}

/// How a cohort gets what it needs around its events.
pub struct Cohort<'a> {
    pub shell: &'a dyn Shell,
    pub host: Option<&'a Arc<dyn Host>>,
    /// A new operator for the plan (after one failed, or stopped taking events).
    pub operator: &'a dyn Fn() -> Result<Box<dyn Operator>, String>,
    /// The registration's backlog, told which event is in progress (its patience).
    pub backlog: Option<&'a Backlog>,
}

/// One event of the cohort.
struct Event {
    exec: Arc<Execution>,
    then: Option<Then>,
    input: Vec<Value>,
    cx: RunCtx,
    read_nanos: u64,
    /// Over (recorded): it is not run again.
    over: bool,
}

/// The events as an operator takes them, with what the thread holds for the one running.
struct Taking<'c, 'a> {
    cohort: &'c Cohort<'a>,
    events: &'c mut [Event],
    /// The event running now, and what the thread holds for it.
    current: Option<(usize, Box<dyn Any>, Option<InProgress<'a>>)>,
}

impl Events for Taking<'_, '_> {
    fn len(&self) -> usize {
        self.events.len()
    }

    fn start(&mut self, i: usize) -> Option<(Vec<Value>, &mut RunCtx)> {
        self.current = None;
        let ev = self.events.get_mut(i)?;
        if ev.over {
            return None;
        }
        if ev.exec.abort_requested() {
            self.cohort.end(ev, Err(Stop::Aborted), None);
            return None;
        }
        let in_progress = self.cohort.backlog.map(|b| b.begin(ev.exec.seq));
        let entered = self.cohort.enter(&ev.exec);
        self.current = Some((i, entered, in_progress));
        fault::hit(Point::Step);
        Some((std::mem::take(&mut ev.input), &mut ev.cx))
    }

    fn end(&mut self, i: usize, out: Result<Vec<Value>, Stop>) {
        // Its user, its interrupt and its mark end with its steps, before the lock slice.
        self.current = None;
        self.cohort.shell.end_batch();
        if let Some(ev) = self.events.get_mut(i) {
            if !ev.over {
                self.cohort.end(ev, out, None);
            }
        }
    }
}

impl Taking<'_, '_> {
    /// The event that started and did not end (a panic left it).
    fn running(&self) -> Option<usize> {
        self.current.as_ref().map(|(i, _, _)| *i)
    }
}

impl Cohort<'_> {
    /// Runs `events`, oldest first, starting with `op`.
    pub fn run(&self, pending: Vec<Pending>, mut op: Option<Box<dyn Operator>>) {
        let mut events = Vec::with_capacity(pending.len());
        for p in pending {
            if !p.exec.start() {
                // Aborted before it started: RG.ABORTEXECUTION recorded it.
                if let Some(then) = p.then {
                    run_then(self.shell, &p.exec, then);
                }
                continue;
            }
            let read_from = Instant::now();
            let mut ev = Event {
                exec: p.exec,
                then: p.then,
                input: Vec::new(),
                cx: RunCtx::new(false),
                read_nanos: 0,
                over: false,
            };
            match self.read(&ev.exec, p.reader, &mut ev.cx) {
                Ok(records) => ev.input = records,
                Err((stop, fault)) => self.end(&mut ev, Err(stop), fault),
            }
            ev.read_nanos = read_from.elapsed().as_nanos() as u64;
            events.push(ev);
        }
        let mut from = 0;
        while from < events.len() {
            if events[from].over {
                from += 1;
                continue;
            }
            let mut operator = match op.take().map_or_else(self.operator, Ok) {
                Ok(operator) => operator,
                Err(e) => {
                    // The plan no longer compiles here: each event says so.
                    for ev in events[from..].iter_mut().filter(|ev| !ev.over) {
                        self.end(ev, Err(Stop::Failed(e.clone())), None);
                    }
                    break;
                }
            };
            let left = events.len() - from;
            let mut taking = Taking {
                cohort: self,
                events: &mut events[from..],
                current: None,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| operator.push_each(&mut taking)));
            let running = taking.running();
            taking.current = None;
            drop(taking);
            from += match outcome {
                Ok(n) => {
                    if n >= left {
                        op = Some(operator);
                    }
                    n.max(1)
                }
                Err(panic) => {
                    self.shell.abandon();
                    let i = from + running.unwrap_or(0);
                    if let Some(ev) = events.get_mut(i).filter(|ev| !ev.over) {
                        self.end(
                            ev,
                            Err(Stop::Failed(String::new())),
                            Some(panic_text(&*panic)),
                        );
                    }
                    i + 1 - from
                }
            };
            self.thens(&mut events);
        }
        for ev in events.iter_mut().filter(|ev| !ev.over) {
            // Never run (no operator took it): it must not stay running for ever.
            let bug = "the event was dropped before it ran (a bug was caught)".to_string();
            self.end(ev, Err(Stop::Failed(bug)), None);
        }
        self.thens(&mut events);
    }

    /// The thread set up for `exec`: whom it acts for, the current execution and its
    /// host's worker state.
    fn enter(&self, exec: &Arc<Execution>) -> Box<dyn Any> {
        let entered = self.shell.enter(exec);
        let host = self.host.map(|h| h.enter_worker(exec));
        Box::new((entered, host))
    }

    /// Reads all of an event's records (as a run's first stage does), with the reader's
    /// errors as the execution's. Err: it ends unrun (aborted, or a fault).
    fn read(
        &self,
        exec: &Arc<Execution>,
        mut reader: Box<dyn Reader>,
        cx: &mut RunCtx,
    ) -> Result<Vec<Value>, (Stop, Option<String>)> {
        let _entered = self.shell.enter(exec);
        let batch_size = self.shell.batch_size().max(1);
        let mut records = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| loop {
            if exec.abort_requested() {
                return Err(Stop::Aborted);
            }
            fault::hit(Point::Reader);
            match reader.next_batch(batch_size) {
                Ok(Some(batch)) => {
                    exec.add_read(batch.len());
                    records.extend(batch)
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.shell.end_batch();
                    if exec.abort_requested() {
                        return Err(Stop::Aborted);
                    }
                    cx.errors.push(format!("{e:#}"));
                    return Ok(());
                }
            }
        }));
        drop(reader);
        match outcome {
            Ok(Ok(())) => Ok(records),
            Ok(Err(stop)) => Err((stop, None)),
            Err(panic) => {
                self.shell.abandon();
                Err((Stop::Failed(String::new()), Some(panic_text(&*panic))))
            }
        }
    }

    /// Records how an event ended and answers its waiters (its `then` runs later, in
    /// `thens`).
    fn end(&self, ev: &mut Event, out: Result<Vec<Value>, Stop>, fault: Option<String>) {
        ev.over = true;
        let (results, stop) = match out {
            Ok(results) => (results, None),
            Err(stop) => (Vec::new(), Some(stop)),
        };
        record_ending(
            &ev.exec,
            self.shell,
            Ending {
                results,
                cx: std::mem::replace(&mut ev.cx, RunCtx::new(false)),
                stop,
                fault,
                gave_up: None,
                read_nanos: ev.read_nanos,
                step_nanos: Vec::new(),
            },
        );
    }

    /// Runs the `then`s of the events that are over.
    fn thens(&self, events: &mut [Event]) {
        for ev in events.iter_mut().filter(|ev| ev.over) {
            if let Some(then) = ev.then.take() {
                run_then(self.shell, &ev.exec, then);
            }
        }
    }
}

#[cfg(test)]
#[path = "cohort_tests.rs"]
mod tests;
