//! Operators: what a stage runs. A fused host run or a native step is one operator.

use super::value::Value;

/// Why an execution stops early.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// RG.ABORTEXECUTION.
    Aborted,
    /// A failure of the execution itself (not of one record).
    Failed(String),
}

/// What an operator may record while it runs.
pub struct RunCtx {
    /// Per-record errors, in the order they happened.
    pub errors: Vec<String>,
    /// ProfileExecutions: operators time their steps.
    pub profile: bool,
    /// Entries into each language runtime, by host name.
    pub entries: Vec<(&'static str, u64)>,
}

impl RunCtx {
    pub fn new(profile: bool) -> Self {
        RunCtx {
            errors: Vec::new(),
            profile,
            entries: Vec::new(),
        }
    }

    pub fn count_entry(&mut self, host: &'static str) {
        match self.entries.iter_mut().find(|(h, _)| *h == host) {
            Some((_, n)) => *n += 1,
            None => self.entries.push((host, 1)),
        }
    }

    pub fn entries_of(&self, host: &str) -> u64 {
        self.entries
            .iter()
            .find(|(h, _)| *h == host)
            .map_or(0, |(_, n)| *n)
    }
}

/// The events of a cohort (`engine::cohort`) as an operator takes them: each one started,
/// run as a whole run of its own, and ended, one after another.
pub trait Events {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Starts event `i`: the thread acts for it until `end(i)`; its records and its run's
    /// context. None: it does not run (aborted meanwhile) and is over already.
    fn start(&mut self, i: usize) -> Option<(Vec<Value>, &mut RunCtx)>;
    /// Event `i` ran: what came out of it (its records, or why it stopped).
    fn end(&mut self, i: usize, out: Result<Vec<Value>, Stop>);
}

pub trait Operator: Send {
    /// Runs a batch through the operator's steps; returns what comes out.
    fn push(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop>;
    /// The input is over: returns what stateful steps still hold.
    fn finish(&mut self, cx: &mut RunCtx) -> Result<Vec<Value>, Stop>;
    /// Nanoseconds spent in each step this operator covers (zeros unless profiling).
    fn step_nanos(&self) -> Vec<u64>;
    /// Records wait inside the operator on futures that the thread which started a sync
    /// run must not wait for (RedisGears 1.2 moves such a run to the background): the
    /// runner calls `finish` on a pool worker instead.
    fn parked(&self) -> bool {
        false
    }
    /// Runs `events` one after another, each as a whole run of its own (its batch
    /// pushed, then finished). An operator that can go on from one event's run to the
    /// next enters its runtime once for all of them. Runs at least the first event and
    /// returns how many it took: it stops after one that failed or left anything in the
    /// operator, which is then not used again. This one takes the first only.
    fn push_each(&mut self, events: &mut dyn Events) -> usize {
        push_first(self, events)
    }
}

/// `Operator::push_each` of an operator that takes one event only.
pub fn push_first<O: Operator + ?Sized>(op: &mut O, events: &mut dyn Events) -> usize {
    if events.is_empty() {
        return 0;
    }
    if let Some((input, cx)) = events.start(0) {
        let out = op.push(cx, input).and_then(|mut out| {
            out.extend(op.finish(cx)?);
            Ok(out)
        });
        events.end(0, out);
    }
    1
}
/// `Operator::push_each` of an operator of stateless steps (it holds nothing from one
/// batch to the next, so it has nothing to finish): each event's batch pushed in turn,
/// up to one that failed.
pub fn push_stateless<O: Operator + ?Sized>(op: &mut O, events: &mut dyn Events) -> usize {
    for i in 0..events.len() {
        let Some((input, cx)) = events.start(i) else {
            continue;
        };
        let out = op.push(cx, input);
        let failed = out.is_err();
        events.end(i, out);
        if failed {
            return i + 1;
        }
    }
    events.len()
}

/// An operator that passes its batches through (the engine's tests).
#[cfg(test)]
pub struct Pass;

#[cfg(test)]
impl Operator for Pass {
    fn push(&mut self, _: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        Ok(batch)
    }
    fn finish(&mut self, _: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        Ok(Vec::new())
    }
    fn step_nanos(&self) -> Vec<u64> {
        vec![0]
    }
}
