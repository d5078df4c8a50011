//! A registration's async events waiting for a worker, taken by a few drains.
//!
//! Each async event is still its own execution (statistics, errors, RG.GETEXECUTION),
//! but a worker that takes the events of one registration runs them back to back: one
//! job on the pool and one taking of the Redis lock serve many events, instead of a job
//! and a lock hand-off each (which cost more than the run itself). One drain at a time
//! while events run quickly, so that a flood does not put every worker on the Redis
//! lock at once (the clients' latency); another starts when the event in progress has
//! run for a while (a step that sleeps or waits on something outside), so that a slow
//! event does not hold up the ones behind it; it ends once events run quickly again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::execution::Execution;
use super::reader::Reader;
use super::run::Then;

/// One event's execution, waiting to start.
pub struct Pending {
    pub exec: Arc<Execution>,
    pub reader: Box<dyn Reader>,
    pub then: Option<Then>,
}

/// How long an event may run before another drain starts behind it.
pub const PATIENCE: Duration = Duration::from_millis(5);

#[derive(Default)]
struct State {
    /// The events, oldest first.
    queue: VecDeque<Pending>,
    /// Drains on their way or running.
    drains: usize,
    /// The events in progress (by execution sequence number) and when each started.
    running: Vec<(u64, Instant)>,
}

impl State {
    /// Events in progress for longer than `patience`.
    fn stuck(&self, patience: Duration) -> usize {
        self.running
            .iter()
            .filter(|(_, t)| t.elapsed() > patience)
            .count()
    }
}

#[derive(Default)]
pub struct Backlog {
    state: Mutex<State>,
}

impl Backlog {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an event; true when the caller must start another drain: none is on its way,
    /// or fewer than `drains` are and each is in an event older than `patience`.
    pub fn push(&self, pending: Pending, drains: usize, patience: Duration) -> bool {
        let mut st = self.state();
        st.queue.push_back(pending);
        let more = st.drains == 0 || (st.drains < drains && st.stuck(patience) >= st.drains);
        if more {
            st.drains += 1;
        }
        more
    }

    /// Up to `max` events, oldest first. None when there are none left: the drain that
    /// asked is then over.
    pub fn take(&self, max: usize) -> Option<Vec<Pending>> {
        let mut st = self.state();
        if st.queue.is_empty() {
            st.drains = st.drains.saturating_sub(1);
            return None;
        }
        let n = st.queue.len().min(max.max(1));
        Some(st.queue.drain(..n).collect())
    }

    /// Ends the asking drain (between events) when another one runs and is not stuck in
    /// an event older than `patience`: one drain is enough again. Whether it ended.
    pub fn retire_extra(&self, patience: Duration) -> bool {
        let mut st = self.state();
        if st.drains > 1 && st.stuck(patience) < st.drains - 1 {
            st.drains -= 1;
            return true;
        }
        false
    }

    /// Marks the event of execution `seq` in progress while the guard lives.
    pub fn begin(&self, seq: u64) -> InProgress<'_> {
        self.state().running.push((seq, Instant::now()));
        InProgress(self, seq)
    }

    /// Events waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().queue.len()
    }
}

/// An event in progress (`Backlog::begin`).
pub struct InProgress<'a>(&'a Backlog, u64);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state();
        if let Some(i) = st.running.iter().position(|(seq, _)| *seq == self.1) {
            st.running.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::execution::RunAs;
    use crate::engine::reader::VecReader;
    use crate::engine::registry::Registry;

    fn pending(registry: &Registry) -> Pending {
        Pending {
            exec: registry.create(None, Vec::new(), RunAs::new("default", 0)),
            reader: Box::new(VecReader::new(Vec::new())),
            then: None,
        }
    }

    #[test]
    fn one_drain_while_events_run_quickly() {
        let registry = Registry::new("shard".into());
        let backlog = Backlog::default();
        let hour = Duration::from_secs(3600);
        let first = pending(&registry);
        let seq = first.exec.seq;
        assert!(
            backlog.push(first, 3, hour),
            "the first event starts a drain"
        );
        assert!(
            !backlog.push(pending(&registry), 3, hour),
            "one is on its way"
        );
        assert!(!backlog.push(pending(&registry), 3, hour));
        assert_eq!(backlog.len(), 3);
        let taken = backlog.take(2).expect("events wait");
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].exec.seq, seq, "oldest first");
        assert!(
            !backlog.push(pending(&registry), 3, hour),
            "the drain still runs"
        );
        assert_eq!(backlog.take(10).map(|t| t.len()), Some(2));
        assert!(backlog.take(10).is_none(), "empty: the drain is over");
        assert!(
            backlog.push(pending(&registry), 3, hour),
            "the next event starts another"
        );
    }

    #[test]
    fn another_drain_when_the_event_in_progress_is_slow() {
        let registry = Registry::new("shard".into());
        let backlog = Backlog::default();
        let patience = Duration::from_millis(20);
        assert!(backlog.push(pending(&registry), 2, patience));
        let slow = backlog.take(1).expect("one event");
        let in_progress = backlog.begin(slow[0].exec.seq);
        assert!(
            !backlog.push(pending(&registry), 2, patience),
            "in progress, not slow"
        );
        std::thread::sleep(patience * 2);
        assert!(
            backlog.push(pending(&registry), 2, patience),
            "slow: a second drain"
        );
        assert!(
            !backlog.retire_extra(patience),
            "the other one is stuck: keep on"
        );
        std::thread::sleep(patience * 2);
        assert!(
            !backlog.push(pending(&registry), 2, patience),
            "no more than two"
        );
        drop(in_progress);
        assert!(
            backlog.retire_extra(patience),
            "the slow event ended: one is enough"
        );
        assert!(!backlog.retire_extra(patience), "never the last one");
        assert_eq!(backlog.take(10).map(|t| t.len()), Some(3));
        assert!(backlog.take(10).is_none(), "the last one ends");
        assert!(
            backlog.push(pending(&registry), 2, patience),
            "none runs now"
        );
    }
}
