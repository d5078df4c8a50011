//! The runner over fakes: a shell with its own pool, and "shards" in one process joined
//! by a network that delays, interleaves and reorders batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::*;
use crate::engine::compile::{compile, without_exchanges};
use crate::engine::execution::{Abort, RunAs};
use crate::engine::operator::Pass;
use crate::engine::plan::{Combiner, HostStep, NativeStep, OutputForm, Step, StepKind};
use crate::engine::pool::Pool;

/// A shell whose jobs run on a pool of its own; counts what the runner gives back.
struct FakeShell {
    pool: Pool,
    batch: usize,
    end_batches: AtomicUsize,
    abandoned: AtomicUsize,
}

impl FakeShell {
    fn new(workers: usize, batch: usize) -> Arc<FakeShell> {
        Arc::new(FakeShell {
            pool: Pool::new(workers, || {}).unwrap(),
            batch,
            end_batches: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
        })
    }
}

impl Shell for FakeShell {
    fn batch_size(&self) -> usize {
        self.batch
    }
    fn profile(&self) -> bool {
        true
    }
    fn enter(&self, _exec: &Arc<Execution>) -> Box<dyn Any> {
        Box::new(())
    }
    fn end_batch(&self) {
        self.end_batches.fetch_add(1, Ordering::Relaxed);
    }
    fn abandon(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }
    fn after_record(&self, _exec: &Execution) {}
    fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
        self.pool.submit(job);
    }
}

/// A message on the fake network: to shard, for execution number, the batch.
type Frame = (usize, usize, Inbound);

struct FakePeers {
    me: usize,
    count: usize,
    initiator: usize,
    exec: usize,
    net: Sender<Frame>,
}

impl Peers for FakePeers {
    fn count(&self) -> usize {
        self.count
    }
    fn me(&self) -> usize {
        self.me
    }
    fn initiator(&self) -> usize {
        self.initiator
    }
    fn owner(&self, key: &[u8]) -> usize {
        key.iter().map(|&b| b as usize).sum::<usize>() % self.count
    }
    fn send(&self, to: usize, batch: Inbound) {
        assert_ne!(
            to, self.me,
            "a shard never sends to itself over the network"
        );
        self.net.send((to, self.exec, batch)).unwrap();
    }
}

/// Delivers frames in a scrambled order, some late, until `stop`.
fn network(
    frames: Receiver<Frame>,
    runs: Arc<Mutex<HashMap<(usize, usize), Arc<Run>>>>,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut held: Vec<Frame> = Vec::new();
        loop {
            match frames.recv_timeout(Duration::from_micros(300)) {
                Ok(frame) => held.push(frame),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) if held.is_empty() => return,
                Err(_) => {}
            }
            // Deliver a random held frame most of the time; keep some back for later.
            while !held.is_empty() && next() % 4 != 0 {
                let i = (next() as usize) % held.len();
                let (to, exec, batch) = held.swap_remove(i);
                let run = runs.lock().unwrap().get(&(to, exec)).cloned();
                if let Some(run) = run {
                    run.deliver(batch);
                }
            }
        }
    })
}

fn step(kind: StepKind) -> Step {
    Step::of(kind)
}

/// countby over each shard's records: the counts repartition by key, then collect.
fn countby_plan() -> Vec<Step> {
    vec![
        step(StepKind::Native(NativeStep::LocalCountBy)),
        step(StepKind::Exchange(Exchange::Repartition(None))),
        step(StepKind::Native(NativeStep::SumCountsBy)),
        step(StepKind::Exchange(Exchange::Collect)),
        step(StepKind::Native(NativeStep::Sort { reverse: false })),
    ]
}

fn records_of(shard: usize, exec: usize) -> Vec<Value> {
    (0..(50 + 37 * shard + exec))
        .map(|i| Value::str(format!("k{}", (i * 7 + shard) % 13)))
        .collect()
}

fn expected_counts(shards: usize, exec: usize) -> Vec<(String, i64)> {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for s in 0..shards {
        for r in records_of(s, exec) {
            if let Value::Str(k) = r {
                *counts.entry(k).or_default() += 1;
            }
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort();
    v
}

fn counts_of(results: &[Value]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = results
        .iter()
        .map(|r| match (r.get("key"), r.get("value")) {
            (Some(Value::Str(k)), Some(Value::Int(n))) => (k.clone(), *n),
            other => panic!("not a count: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

fn new_exec(i: usize) -> Arc<Execution> {
    Arc::new(Execution::new(
        format!("x-{i}"),
        i as u64,
        None,
        vec![],
        RunAs::new("default", 0),
    ))
}

fn wait_finished(execs: &[Arc<Execution>], within: Duration) {
    let deadline = Instant::now() + within;
    while execs.iter().any(|e| !e.status().is_finished()) {
        assert!(
            Instant::now() < deadline,
            "{} of {} executions never finished (deadlock?)",
            execs.iter().filter(|e| !e.status().is_finished()).count(),
            execs.len()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `execs` executions of the countby plan on `shards` shards, each with a pool of
/// `workers`; returns the initiators' executions (and every shard's).
fn run_cluster(
    shards: usize,
    workers: usize,
    execs: usize,
    seed: u64,
) -> (Vec<Arc<Execution>>, Vec<Arc<Execution>>) {
    let (tx, rx) = unbounded::<Frame>();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let shells: Vec<_> = (0..shards).map(|_| FakeShell::new(workers, 16)).collect();
    let mut initiators = Vec::new();
    let mut all = Vec::new();
    for e in 0..execs {
        let initiator = e % shards;
        for (s, shell) in shells.iter().enumerate() {
            let exec = new_exec(e);
            if s == initiator {
                initiators.push(exec.clone());
            }
            all.push(exec.clone());
            let stages = compile(&countby_plan(), None, false, false).unwrap();
            let peers = Arc::new(FakePeers {
                me: s,
                count: shards,
                initiator,
                exec: e,
                net: tx.clone(),
            });
            let run = Run::new(
                exec,
                Box::new(VecReader::new(records_of(s, e))),
                stages,
                None,
                shell.clone(),
                peers,
            );
            runs.lock().unwrap().insert((s, e), run);
        }
    }
    drop(tx);
    let net = network(rx, runs.clone(), seed);
    // Start every shard's part, shards and executions interleaved.
    let mut order: Vec<_> = runs.lock().unwrap().values().cloned().collect();
    order.sort_by_key(|r| (r.execution().seq as usize * 7919) % 101);
    for run in order {
        run.spawn();
    }
    wait_finished(&all, Duration::from_secs(30));
    runs.lock().unwrap().clear();
    net.join().unwrap();
    (initiators, all)
}

#[test]
fn count_over_batches_on_one_shard() {
    let steps = vec![
        step(StepKind::Native(NativeStep::Limit {
            offset: 1,
            length: 1000,
        })),
        step(StepKind::Native(NativeStep::LocalCount)),
        step(StepKind::Exchange(Exchange::Collect)),
        step(StepKind::Native(NativeStep::SumCounts)),
    ];
    let stages = compile(&steps, None, true, false).unwrap();
    let exec = new_exec(1);
    let records = (0..1500).map(Value::Int).collect();
    let shell = FakeShell::new(1, 64);
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(records)),
        stages,
        None,
        shell,
        Arc::new(Alone),
    );
    run.work_here();
    let st = exec.state();
    assert_eq!(st.status, Status::Done);
    assert_eq!(st.results, vec![Value::Int(1000)]);
}

#[test]
fn aborted_before_start_never_runs() {
    let exec = new_exec(1);
    assert_eq!(exec.request_abort(), Abort::FinishedHere);
    let ran = Arc::new(AtomicUsize::new(0));
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(vec![Value::Int(1)])),
        vec![],
        None,
        FakeShell::new(1, 64),
        Arc::new(Alone),
    );
    let seen = ran.clone();
    run.then(Box::new(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    }));
    run.work_here();
    assert_eq!(exec.status(), Status::Aborted);
    assert_eq!(ran.load(Ordering::Relaxed), 1, "then runs even so");
}

#[test]
fn three_shards_repartition_and_collect() {
    let (initiators, all) = run_cluster(3, 1, 1, 42);
    let st = initiators[0].state();
    assert_eq!(st.status, Status::Done, "{:?}", st.errors);
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(counts_of(&st.results), expected_counts(3, 0));
    drop(st);
    // The other shards end too, with nothing of their own left over.
    for e in all {
        assert!(e.status().is_finished());
    }
}

#[test]
fn fifty_executions_on_one_two_and_three_workers_never_deadlock() {
    for workers in 1..=3 {
        let (initiators, _) = run_cluster(3, workers, 50, 7 + workers as u64);
        for (e, exec) in initiators.iter().enumerate() {
            let st = exec.state();
            assert_eq!(st.status, Status::Done, "workers {workers}, exec {e}");
            assert!(st.errors.is_empty(), "{:?}", st.errors);
            assert_eq!(counts_of(&st.results), expected_counts(3, e), "exec {e}");
        }
    }
}

#[test]
fn batches_that_arrive_before_the_stage_runs_wait_in_its_inbox() {
    // Shard 1 of 2 receives all of shard 0's batches before it even starts.
    let shell = FakeShell::new(1, 4);
    let exec = new_exec(1);
    let (tx, _rx) = unbounded::<Frame>();
    let peers = Arc::new(FakePeers {
        me: 1,
        count: 2,
        initiator: 1,
        exec: 1,
        net: tx,
    });
    let steps = vec![
        step(StepKind::Native(NativeStep::LocalCount)),
        step(StepKind::Exchange(Exchange::Collect)),
        step(StepKind::Native(NativeStep::SumCounts)),
    ];
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new((0..10).map(Value::Int).collect())),
        compile(&steps, None, false, false).unwrap(),
        None,
        shell,
        peers,
    );
    // Shard 0 sends its count in two batches (out of order), then its results mark.
    let count = |n, last| Inbound {
        stage: 1,
        from: 0,
        records: vec![Value::Int(n)],
        last_of: last,
        errors: vec![],
        gave_up: None,
    };
    run.deliver(count(5, Some(2)));
    run.deliver(count(20, None));
    run.deliver(Inbound {
        stage: 2,
        from: 0,
        records: vec![],
        last_of: Some(1),
        errors: vec!["shard 0 had a bad record".into()],
        gave_up: None,
    });
    run.work_here();
    let st = exec.state();
    assert_eq!(st.results, vec![Value::Int(35)]);
    assert_eq!(st.errors, vec!["shard 0 had a bad record".to_string()]);
}

/// An operator that panics on its first batch.
struct Bomb;

impl Operator for Bomb {
    fn push(&mut self, _: &mut RunCtx, _: Vec<Value>) -> Result<Vec<Value>, Stop> {
        panic!("boom");
    }
    fn finish(&mut self, _: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        Ok(vec![])
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
}

#[test]
fn a_panic_fails_only_its_execution_and_gives_everything_back() {
    let shell = FakeShell::new(1, 8);
    let exec = new_exec(1);
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = answered.clone();
    exec.on_finish(Box::new(move |st| {
        assert!(st.fault.as_deref().unwrap_or("").contains("boom"));
        seen.fetch_add(1, Ordering::Relaxed);
    }));
    let stage = Stage {
        ops: vec![Box::new(Bomb)],
        op_steps: vec![vec![0]],
        exchange: None,
        extract: None,
    };
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(vec![Value::Int(1)])),
        vec![stage],
        None,
        shell.clone(),
        Arc::new(Alone),
    );
    run.spawn();
    wait_finished(std::slice::from_ref(&exec), Duration::from_secs(5));
    let st = exec.state();
    assert_eq!(st.status, Status::Done);
    assert!(st.errors.iter().any(|e| e.contains("internal error")));
    assert_eq!(answered.load(Ordering::Relaxed), 1);
    assert_eq!(
        shell.abandoned.load(Ordering::Relaxed),
        1,
        "lock given back"
    );
    drop(st);
    // The pool's worker survived and takes the next run.
    let next = new_exec(2);
    let run = Run::new(
        next.clone(),
        Box::new(VecReader::new(vec![Value::Int(1)])),
        compile(
            &[step(StepKind::Native(NativeStep::LocalCount))],
            None,
            false,
            false,
        )
        .unwrap(),
        None,
        shell,
        Arc::new(Alone),
    );
    run.spawn();
    wait_finished(std::slice::from_ref(&next), Duration::from_secs(5));
    assert_eq!(next.state().results, vec![Value::Int(1)]);
}

#[test]
fn a_run_dropped_before_its_end_still_ends_its_execution() {
    let exec = new_exec(1);
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(vec![])),
        vec![],
        None,
        FakeShell::new(1, 8),
        Arc::new(Alone),
    );
    drop(run);
    assert!(exec.status().is_finished());
    assert!(exec.state().errors[0].contains("dropped"));
}

/// A host whose fused runs pass records through; it runs countby's local half inside
/// (one partial per distinct record of a batch), not count's.
struct CombiningHost(Mutex<Vec<Option<Combiner>>>);

/// Counts the records of each batch: the partials of a countby combiner.
struct CountEachBatch;

impl Operator for CountEachBatch {
    fn push(&mut self, _: &mut RunCtx, b: Vec<Value>) -> Result<Vec<Value>, Stop> {
        let mut counts: Vec<(Value, i64)> = Vec::new();
        for v in b {
            match counts.iter_mut().find(|(k, _)| *k == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v, 1)),
            }
        }
        Ok(counts
            .into_iter()
            .map(|(k, n)| Value::key_value(k, Value::Int(n)))
            .collect())
    }
    fn finish(&mut self, _: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        Ok(vec![])
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
}

impl Host for CombiningHost {
    fn name(&self) -> &'static str {
        "combining"
    }
    fn reference(&self) -> anyhow::Result<Value> {
        Ok(Value::Nil)
    }
    fn fuse(
        &self,
        _: &[HostStep],
        _: OutputForm,
        _: bool,
        _: bool,
    ) -> anyhow::Result<Box<dyn Operator>> {
        self.0.lock().unwrap().push(None);
        Ok(Box::new(Pass))
    }
    fn fuse_combined(
        &self,
        _: &[HostStep],
        c: Combiner,
        _: bool,
        _: bool,
    ) -> anyhow::Result<Option<Box<dyn Operator>>> {
        self.0.lock().unwrap().push(Some(c));
        Ok((c == Combiner::CountBy).then(|| Box::new(CountEachBatch) as Box<dyn Operator>))
    }
}

#[test]
fn a_combiner_runs_inside_the_fused_run_and_gives_the_same_counts() {
    let user_step = || {
        step(StepKind::Host(HostStep {
            op: "map",
            args: Vec::new(),
        }))
    };
    let steps = vec![
        user_step(),
        step(StepKind::Native(NativeStep::LocalCountBy)),
        step(StepKind::Exchange(Exchange::Repartition(None))),
        step(StepKind::Native(NativeStep::SumCountsBy)),
    ];
    let fake = Arc::new(CombiningHost(Mutex::new(vec![])));
    let h: Arc<dyn Host> = fake.clone();
    let stages = without_exchanges(compile(&steps, Some(&h), false, false).unwrap());
    assert_eq!(*fake.0.lock().unwrap(), vec![Some(Combiner::CountBy)]);
    let exec = new_exec(1);
    let words = "a b a c b b d a".split(' ').map(Value::str).collect();
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(words)),
        stages,
        Some(h.clone()),
        FakeShell::new(1, 4),
        Arc::new(Alone),
    );
    run.work_here();
    let st = exec.state();
    let counts: Vec<(String, i64)> = st
        .results
        .iter()
        .map(|r| match (r.get("key"), r.get("value")) {
            (Some(Value::Str(k)), Some(Value::Int(n))) => (k.clone(), *n),
            other => panic!("not a count: {other:?}"),
        })
        .collect();
    let expect = [("a", 3), ("b", 3), ("c", 1), ("d", 1)];
    assert_eq!(
        counts,
        expect.map(|(k, n)| (k.to_string(), n)).to_vec(),
        "first-seen order and totals as the native countby"
    );
    // A host that cannot combine count() gets the native local half.
    let steps = vec![user_step(), step(StepKind::Native(NativeStep::LocalCount))];
    compile(&steps, Some(&h), false, false).unwrap();
    assert_eq!(fake.0.lock().unwrap()[1..], [Some(Combiner::Count), None]);
}

/// One execution of `steps` on `shards` shards (shard s reads `records(s)`), shard 0
/// the initiator; the shards in `silent` never start. Returns every shard's run.
fn spread(
    steps: &[Step],
    shards: usize,
    records: impl Fn(usize) -> Vec<Value>,
    silent: &[usize],
) -> Vec<Arc<Run>> {
    let (tx, rx) = unbounded::<Frame>();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let mut all = Vec::new();
    for s in 0..shards {
        let peers = Arc::new(FakePeers {
            me: s,
            count: shards,
            initiator: 0,
            exec: 0,
            net: tx.clone(),
        });
        let run = Run::new(
            new_exec(0),
            Box::new(VecReader::new(records(s))),
            compile(steps, None, false, false).unwrap(),
            None,
            FakeShell::new(1, 4),
            peers,
        );
        runs.lock().unwrap().insert((s, 0), run.clone());
        all.push(run);
    }
    drop(tx);
    network(rx, runs, 3);
    for (s, run) in all.iter().enumerate() {
        if !silent.contains(&s) {
            run.spawn();
        }
    }
    all
}

/// Waits until `run` started and ran what it could on its own (it then waits for input).
fn wait_own_part(run: &Arc<Run>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.busy() || run.execution().status() == Status::Created {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_count_after_collect_runs_on_the_initiator_only() {
    let steps = vec![
        step(StepKind::Native(NativeStep::LocalCount)),
        step(StepKind::Exchange(Exchange::Collect)),
        step(StepKind::Native(NativeStep::SumCounts)),
    ];
    let runs = spread(
        &steps,
        3,
        |s| (0..10 * (s + 1)).map(|i| Value::Int(i as i64)).collect(),
        &[],
    );
    let execs: Vec<_> = runs.iter().map(|r| r.execution().clone()).collect();
    wait_finished(&execs, Duration::from_secs(10));
    // One count, of every shard's records; the others' parts add nothing of their own.
    assert_eq!(execs[0].state().results, vec![Value::Int(60)]);
}

#[test]
fn a_run_given_up_ends_aborted_with_what_it_gathered() {
    let steps = vec![step(StepKind::Exchange(Exchange::Collect))];
    let runs = spread(&steps, 2, |s| vec![Value::Int(s as i64); 5], &[1]);
    let initiator = &runs[0];
    // It ran its own part and waits for the silent shard's.
    wait_own_part(initiator);
    assert!(!initiator.finished());
    initiator.give_up("Execution max idle reached".into());
    wait_finished(&[initiator.execution().clone()], Duration::from_secs(10));
    let st = initiator.execution().state();
    assert_eq!(st.status, Status::Aborted);
    assert_eq!(st.results, vec![Value::Int(0); 5]);
    assert!(st
        .errors
        .contains(&"Execution max idle reached".to_string()));
}

#[test]
fn batches_to_other_shards_are_cut_by_bytes() {
    let big = |n: usize| Value::Bytes(vec![0; n]);
    let parts = by_bytes(vec![big(600), big(600), big(10), big(5000)], 1000);
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        vec![1, 2, 1],
        "a record bigger than the limit goes alone"
    );
}

#[test]
fn a_shard_that_gave_up_ends_the_whole_run_aborted() {
    let steps = vec![step(StepKind::Exchange(Exchange::Collect))];
    let runs = spread(&steps, 2, |s| vec![Value::Int(s as i64); 5], &[1]);
    wait_own_part(&runs[0]);
    // Shard 1's part ended early (its topology changed): its last batch says so.
    runs[0].deliver(Inbound {
        stage: 1,
        from: 1,
        records: vec![Value::Int(1)],
        last_of: Some(1),
        errors: vec![],
        gave_up: Some("cluster topology changed".into()),
    });
    wait_finished(&[runs[0].execution().clone()], Duration::from_secs(10));
    let st = runs[0].execution().state();
    assert_eq!(st.status, Status::Aborted);
    assert!(st.errors.contains(&"cluster topology changed".to_string()));
    let mut got = st.results.clone();
    got.sort_by(|a, b| a.total_cmp(b));
    let mut want = vec![Value::Int(0); 5];
    want.push(Value::Int(1));
    assert_eq!(got, want, "what both shards gathered");
}

/// Holds every record it is pushed, as a sync run's step returning a future parks it;
/// `finish` gives them back, each paired with whether it ran on the thread that pushed.
struct Parks {
    held: Vec<Value>,
    pushed_on: Option<std::thread::ThreadId>,
}

impl Operator for Parks {
    fn push(&mut self, _: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        self.pushed_on = Some(std::thread::current().id());
        self.held.extend(batch);
        Ok(vec![])
    }
    fn finish(&mut self, _: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        let moved = self.pushed_on != Some(std::thread::current().id());
        Ok(self
            .held
            .drain(..)
            .map(|v| Value::List(vec![v, Value::Int(moved as i64)]))
            .collect())
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
    fn parked(&self) -> bool {
        !self.held.is_empty()
    }
}

#[test]
fn a_run_whose_records_are_parked_finishes_on_the_pool() {
    let shell = FakeShell::new(1, 2);
    let exec = new_exec(1);
    let stage = Stage {
        ops: vec![
            Box::new(Parks {
                held: Vec::new(),
                pushed_on: None,
            }),
            Box::new(crate::engine::operator::Pass),
        ],
        op_steps: vec![vec![0], vec![1]],
        exchange: None,
        extract: None,
    };
    let records: Vec<Value> = (0..5).map(Value::Int).collect();
    let run = Run::new(
        exec.clone(),
        Box::new(VecReader::new(records)),
        vec![stage],
        None,
        shell,
        Arc::new(Alone),
    );
    run.work_here();
    // The whole input was read here; the finish went to the pool.
    wait_finished(std::slice::from_ref(&exec), Duration::from_secs(5));
    let st = exec.state();
    assert_eq!(st.status, Status::Done);
    let expected: Vec<Value> = (0..5)
        .map(|i| Value::List(vec![Value::Int(i), Value::Int(1)]))
        .collect();
    assert_eq!(replies(expected), st.results);
}
