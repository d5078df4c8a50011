//! Cohorts over fakes: a shell that counts what it is given back, and an operator that
//! takes events one after another the way a language host does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::engine::execution::{RunAs, Status};
use crate::engine::operator::{push_stateless, Pass};
use crate::engine::reader::{Reader, VecReader};

#[derive(Default)]
struct CountingShell {
    end_batches: AtomicUsize,
    abandoned: AtomicUsize,
    /// The executions entered, by sequence number, in order.
    entered: Mutex<Vec<u64>>,
}

impl Shell for CountingShell {
    fn batch_size(&self) -> usize {
        2
    }
    fn profile(&self) -> bool {
        false
    }
    fn enter(&self, exec: &Arc<Execution>) -> Box<dyn Any> {
        self.entered.lock().unwrap().push(exec.seq);
        Box::new(())
    }
    fn end_batch(&self) {
        self.end_batches.fetch_add(1, Ordering::Relaxed);
    }
    fn abandon(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }
    fn after_record(&self, _exec: &Execution) {}
    fn spawn(&self, _job: Box<dyn FnOnce() + Send>) {
        unreachable!("a cohort runs on the thread that called it")
    }
}

/// Doubles integers; 0 is a record's error, -1 fails the run, -2 panics. Takes events
/// one after another, as a host's fused run of stateless steps does.
struct Doubler;

impl Operator for Doubler {
    fn push(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        let mut out = Vec::new();
        for v in batch {
            match v {
                Value::Int(0) => cx.errors.push("zero".into()),
                Value::Int(-1) => return Err(Stop::Failed("minus one".into())),
                Value::Int(-2) => panic!("minus two"),
                Value::Int(n) => out.push(Value::Int(n * 2)),
                other => out.push(other),
            }
        }
        Ok(out)
    }
    fn finish(&mut self, _cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        Ok(Vec::new())
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
    fn push_each(&mut self, events: &mut dyn Events) -> usize {
        push_stateless(self, events)
    }
}

fn event(seq: u64, records: Vec<i64>) -> Pending {
    event_from(
        seq,
        Box::new(VecReader::new(
            records.into_iter().map(Value::Int).collect(),
        )),
    )
}

fn event_from(seq: u64, reader: Box<dyn Reader>) -> Pending {
    Pending {
        exec: Arc::new(Execution::new(
            format!("x-{seq}"),
            seq,
            None,
            vec![],
            RunAs::new("default", 0),
        )),
        reader,
        then: None,
    }
}

/// Runs `events` as one cohort whose operators are Doublers (or `Pass` when `passes`);
/// returns the executions and how many operators were made.
fn run_cohort(
    events: Vec<Pending>,
    passes: bool,
) -> (Vec<Arc<Execution>>, usize, Arc<CountingShell>) {
    let shell = Arc::new(CountingShell::default());
    let made = AtomicUsize::new(0);
    let operator = || -> Result<Box<dyn Operator>, String> {
        made.fetch_add(1, Ordering::Relaxed);
        Ok(if passes {
            Box::new(Pass)
        } else {
            Box::new(Doubler)
        })
    };
    let backlog = Backlog::default();
    let execs: Vec<_> = events.iter().map(|p| p.exec.clone()).collect();
    Cohort {
        shell: &*shell,
        host: None,
        operator: &operator,
        backlog: Some(&backlog),
    }
    .run(events, None);
    (execs, made.load(Ordering::Relaxed), shell)
}

fn results(exec: &Execution) -> (Vec<Value>, Vec<String>, Status) {
    let st = exec.state();
    (st.results.clone(), st.errors.clone(), st.status)
}

#[test]
fn each_event_is_an_execution_of_its_own_through_one_operator() {
    let (execs, made, shell) = run_cohort(
        vec![
            event(1, vec![1, 2, 3]),
            event(2, vec![0, 5]),
            event(3, vec![]),
        ],
        false,
    );
    assert_eq!(made, 1);
    assert_eq!(
        results(&execs[0]),
        (
            vec![Value::Int(2), Value::Int(4), Value::Int(6)],
            vec![],
            Status::Done
        )
    );
    assert_eq!(
        results(&execs[1]),
        (vec![Value::Int(10)], vec!["zero".into()], Status::Done)
    );
    assert_eq!(results(&execs[2]), (vec![], vec![], Status::Done));
    // Each event read as itself, then ran as itself, in order.
    assert_eq!(*shell.entered.lock().unwrap(), vec![1, 2, 3, 1, 2, 3]);
    assert!(shell.end_batches.load(Ordering::Relaxed) >= 3);
    assert_eq!(shell.abandoned.load(Ordering::Relaxed), 0);
}

#[test]
fn a_failed_event_fails_alone_and_the_next_get_a_new_operator() {
    let (execs, made, _) = run_cohort(
        vec![
            event(1, vec![1]),
            event(2, vec![4, -1]),
            event(3, vec![7]),
            event(4, vec![8]),
        ],
        false,
    );
    assert_eq!(made, 2);
    assert_eq!(results(&execs[0]).0, vec![Value::Int(2)]);
    assert_eq!(
        results(&execs[1]),
        (vec![], vec!["minus one".into()], Status::Done)
    );
    assert_eq!(results(&execs[2]).0, vec![Value::Int(14)]);
    assert_eq!(results(&execs[3]).0, vec![Value::Int(16)]);
}

#[test]
fn a_panic_fails_its_event_only_and_gives_the_lock_back() {
    let (execs, made, shell) = run_cohort(
        vec![event(1, vec![1]), event(2, vec![-2]), event(3, vec![3])],
        false,
    );
    assert_eq!(made, 2);
    assert_eq!(results(&execs[0]).0, vec![Value::Int(2)]);
    let (res, errors, status) = results(&execs[1]);
    assert!(res.is_empty());
    assert_eq!(status, Status::Done);
    assert!(errors[0].contains("minus two"), "{errors:?}");
    assert!(execs[1].state().fault.is_some());
    assert_eq!(results(&execs[2]).0, vec![Value::Int(6)]);
    assert_eq!(shell.abandoned.load(Ordering::Relaxed), 1);
}

#[test]
fn an_event_aborted_before_it_starts_never_runs() {
    let events = vec![event(1, vec![1]), event(2, vec![2]), event(3, vec![3])];
    events[1].exec.request_abort();
    let (execs, made, shell) = run_cohort(events, false);
    assert_eq!(made, 1);
    assert_eq!(execs[1].status(), Status::Aborted);
    assert!(results(&execs[1]).0.is_empty());
    assert_eq!(results(&execs[2]).0, vec![Value::Int(6)]);
    assert!(!shell.entered.lock().unwrap().contains(&2));
}

struct FailingReader;

impl Reader for FailingReader {
    fn next_batch(&mut self, _max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        anyhow::bail!("no such key type")
    }
}

#[test]
fn a_reader_error_is_its_event_error() {
    let (execs, made, _) = run_cohort(
        vec![
            event(1, vec![1]),
            event_from(2, Box::new(FailingReader)),
            event(3, vec![3]),
        ],
        false,
    );
    assert_eq!(made, 1);
    assert_eq!(
        results(&execs[1]),
        (vec![], vec!["no such key type".into()], Status::Done)
    );
    assert_eq!(results(&execs[2]).0, vec![Value::Int(6)]);
}

#[test]
fn an_operator_that_takes_one_event_at_a_time_gets_one_per_event() {
    let (execs, made, _) = run_cohort(
        vec![event(1, vec![1]), event(2, vec![2]), event(3, vec![3])],
        true,
    );
    assert_eq!(made, 3);
    for (i, e) in execs.iter().enumerate() {
        assert_eq!(results(e).0, vec![Value::Int(i as i64 + 1)]);
    }
}

#[test]
fn then_runs_once_per_event() {
    let ran = Arc::new(AtomicUsize::new(0));
    let mut events = vec![event(1, vec![1]), event(2, vec![-1]), event(3, vec![3])];
    events[2].exec.request_abort();
    for p in &mut events {
        let ran = ran.clone();
        p.then = Some(Box::new(move |_| {
            ran.fetch_add(1, Ordering::Relaxed);
        }));
    }
    run_cohort(events, false);
    assert_eq!(ran.load(Ordering::Relaxed), 3);
}

/// On its first event, asks the abort of `abort`; on each event, notes whether `watch`
/// has ended by then.
struct Watcher {
    abort: Arc<Execution>,
    watch: Arc<Execution>,
    seen: Arc<Mutex<Vec<bool>>>,
}

impl Operator for Watcher {
    fn push(&mut self, _cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        self.abort.request_abort();
        let ended = self.watch.status().is_finished();
        self.seen.lock().unwrap().push(ended);
        Ok(batch)
    }
    fn finish(&mut self, _cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        Ok(Vec::new())
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
    fn push_each(&mut self, events: &mut dyn Events) -> usize {
        push_stateless(self, events)
    }
}

#[test]
fn each_event_ends_when_it_ran_and_one_aborted_meanwhile_never_runs() {
    let events = vec![event(1, vec![1]), event(2, vec![2]), event(3, vec![3])];
    let execs: Vec<_> = events.iter().map(|p| p.exec.clone()).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watcher = Watcher {
        abort: execs[1].clone(),
        watch: execs[0].clone(),
        seen: seen.clone(),
    };
    let shell = CountingShell::default();
    let operator = || -> Result<Box<dyn Operator>, String> { Err("no second operator".into()) };
    Cohort {
        shell: &shell,
        host: None,
        operator: &operator,
        backlog: None,
    }
    .run(events, Some(Box::new(watcher)));
    // Event 1 had ended by the time event 3 ran; event 2, aborted while event 1 ran,
    // never ran.
    assert_eq!(*seen.lock().unwrap(), vec![false, true]);
    assert_eq!(results(&execs[0]).0, vec![Value::Int(1)]);
    assert_eq!(execs[1].status(), Status::Aborted);
    assert_eq!(
        results(&execs[1]).1,
        vec!["Execution was aborted".to_string()]
    );
    assert_eq!(results(&execs[2]).0, vec![Value::Int(3)]);
}

#[test]
fn a_plan_fits_when_it_is_one_operator_that_moves_no_records() {
    use crate::engine::plan::{HostStep, NativeStep, Step, StepKind};
    let host = || {
        Step::of(StepKind::Host(HostStep {
            op: "map",
            args: Vec::new(),
        }))
    };
    let native = || Step::of(StepKind::Native(NativeStep::Sort { reverse: false }));
    let collect = || Step::of(StepKind::Exchange(Exchange::Collect));
    let repartition = || Step::of(StepKind::Exchange(Exchange::Repartition(None)));
    assert!(fits(&[host(), host(), collect()]));
    assert!(fits(&[native()]));
    assert!(!fits(&[]));
    assert!(!fits(&[host(), native()]));
    assert!(!fits(&[host(), collect(), host()]));
    assert!(!fits(&[host(), repartition()]));
}
