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
