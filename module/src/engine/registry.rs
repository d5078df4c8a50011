//! The bounded registry of executions that every RG.* execution command reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::execution::{Execution, RunAs, StepReport};
use super::value::Value;

#[derive(Default)]
struct Inner {
    executions: BTreeMap<u64, Arc<Execution>>,
    /// Finished executions in the order they finished (some may be dropped already).
    finished: VecDeque<u64>,
    /// The same per registration.
    finished_by_registration: HashMap<String, VecDeque<u64>>,
    /// Approximate bytes of the results and errors of each finished execution kept.
    result_bytes: HashMap<u64, usize>,
    /// Their sum.
    total_result_bytes: usize,
    /// Executions dropped to stay within the byte bound, newest last, so that whoever asks
    /// for one later learns why it is gone (at most DROPPED_REMEMBERED of them).
    dropped_for_bytes: BTreeSet<u64>,
    /// Executions another shard started (its id names that shard), by id.
    adopted: HashMap<String, u64>,
}

/// How many ids of executions dropped for their bytes are remembered (8 bytes each).
const DROPPED_REMEMBERED: usize = 100_000;

impl Inner {
    /// Forgets an execution, and the bytes its results held.
    fn remove(&mut self, seq: u64) {
        if let Some(exec) = self.executions.remove(&seq) {
            if !self.adopted.is_empty() {
                self.adopted.remove(&exec.id);
            }
        }
        if let Some(bytes) = self.result_bytes.remove(&seq) {
            self.total_result_bytes -= bytes;
        }
    }
}

/// The bounds of the finished executions kept.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// At most this many in all (MaxExecutions)...
    pub max: usize,
    /// ...and of one registration (MaxExecutionsPerRegistration)...
    pub per_registration: usize,
    /// ...and at most about this many bytes of results and errors (MaxResultsBytes).
    pub max_bytes: usize,
}

/// The approximate bytes an execution's outcome holds.
fn outcome_bytes(exec: &Execution) -> usize {
    let st = exec.state();
    let results: usize = st.results.iter().map(Value::approx_size).sum();
    results + st.errors.iter().map(|e| e.capacity()).sum::<usize>()
}

pub struct Registry {
    shard_id: String,
    next_seq: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, PartialEq)]
pub enum DropError {
    NotFound,
    Running,
}

impl Registry {
    pub fn new(shard_id: String) -> Self {
        Registry {
            shard_id,
            next_seq: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next id of the shared sequence (registrations take theirs from it too).
    pub fn next_id(&self) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}", self.shard_id, seq)
    }

    /// Makes sure the sequence never hands out `id` again (an id restored on load).
    pub fn reserve(&self, id: &str) {
        if let Some(seq) = self.seq_of(id) {
            self.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
        }
    }

    /// A new execution with the next id, kept until dropped or trimmed.
    pub fn create(
        &self,
        registration: Option<String>,
        steps: Vec<StepReport>,
        run_as: RunAs,
    ) -> Arc<Execution> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}", self.shard_id, seq);
        let exec = Arc::new(Execution::new(id, seq, registration, steps, run_as));
        self.inner().executions.insert(seq, exec.clone());
        exec
    }

    /// This shard's part of an execution another shard started: it keeps that id (and
    /// takes a number of its own to order it among the others).
    pub fn adopt(&self, id: &str, steps: Vec<StepReport>, run_as: RunAs) -> Arc<Execution> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let exec = Arc::new(Execution::new(id.to_string(), seq, None, steps, run_as));
        let mut inner = self.inner();
        inner.executions.insert(seq, exec.clone());
        inner.adopted.insert(id.to_string(), seq);
        exec
    }

    fn seq_of(&self, id: &str) -> Option<u64> {
        let (shard, seq) = id.rsplit_once('-')?;
        if shard != self.shard_id {
            return self.inner().adopted.get(id).copied();
        }
        seq.parse().ok()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Execution>> {
        let seq = self.seq_of(id)?;
        self.inner().executions.get(&seq).cloned()
    }

    /// The execution numbered `seq` on this shard, if it is still kept.
    pub fn by_seq(&self, seq: u64) -> Option<Arc<Execution>> {
        self.inner().executions.get(&seq).cloned()
    }

    /// Forgets an execution that never ran (e.g. its script failed after run()).
    pub fn forget(&self, exec: &Execution) {
        self.inner().remove(exec.seq);
    }

    /// Whether `id` was dropped to keep the results within MaxResultsBytes.
    pub fn dropped_for_bytes(&self, id: &str) -> bool {
        self.seq_of(id)
            .is_some_and(|seq| self.inner().dropped_for_bytes.contains(&seq))
    }

    /// Approximate bytes of results and errors the finished executions hold.
    pub fn result_bytes(&self) -> usize {
        self.inner().total_result_bytes
    }

    /// RG.DROPEXECUTION: only finished executions can be dropped.
    pub fn drop_execution(&self, id: &str) -> Result<(), DropError> {
        let seq = self.seq_of(id).ok_or(DropError::NotFound)?;
        // The status is read without the registry's lock: a waiter answered with the
        // execution's state locked may forget it (state, then registry), never the reverse.
        let exec = self.inner().executions.get(&seq).cloned();
        let exec = exec.ok_or(DropError::NotFound)?;
        if !exec.status().is_finished() {
            return Err(DropError::Running);
        }
        self.inner().remove(seq);
        Ok(())
    }

    /// Forgets the finished executions of a registration that is gone.
    pub fn drop_registration(&self, registration: &str) {
        let mut inner = self.inner();
        let inner = &mut *inner;
        if let Some(seqs) = inner.finished_by_registration.remove(registration) {
            for seq in seqs {
                inner.remove(seq);
            }
        }
    }

    /// Every execution, oldest first.
    pub fn list(&self) -> Vec<Arc<Execution>> {
        self.inner().executions.values().cloned().collect()
    }

    /// Notes that `exec` finished, then drops the oldest finished executions beyond the
    /// limits: in all, of its registration, and in bytes of results (an execution that
    /// alone holds more than `max_bytes` is dropped too: the bound is a bound).
    pub fn finished(&self, exec: &Execution, limits: &Limits) {
        if exec.is_transient() {
            // Its client is about to get the results; it is forgotten then.
            return;
        }
        let bytes = outcome_bytes(exec);
        let mut inner = self.inner();
        let inner = &mut *inner;
        if !inner.executions.contains_key(&exec.seq) {
            return;
        }
        inner.finished.push_back(exec.seq);
        inner.result_bytes.insert(exec.seq, bytes);
        inner.total_result_bytes += bytes;
        if let Some(reg) = &exec.registration {
            // Looked up before inserting: a registration's every event comes here, and
            // its name is only cloned for its first.
            if !inner.finished_by_registration.contains_key(reg) {
                inner
                    .finished_by_registration
                    .insert(reg.clone(), VecDeque::new());
            }
            let Some(queue) = inner.finished_by_registration.get_mut(reg) else {
                return;
            };
            queue.push_back(exec.seq);
            let mut over = Vec::new();
            while queue.len() > limits.per_registration {
                over.extend(queue.pop_front());
            }
            if queue.is_empty() {
                inner.finished_by_registration.remove(reg);
            }
            for seq in over {
                inner.remove(seq);
            }
        }
        // Dropped entries linger in `finished` until they reach its front.
        while inner.finished.len() > limits.max {
            let Some(seq) = inner.finished.pop_front() else {
                break;
            };
            inner.remove(seq);
        }
        while inner.total_result_bytes > limits.max_bytes {
            let Some(seq) = inner.finished.pop_front() else {
                break;
            };
            if inner.executions.contains_key(&seq) {
                inner.remove(seq);
                inner.dropped_for_bytes.insert(seq);
                if inner.dropped_for_bytes.len() > DROPPED_REMEMBERED {
                    inner.dropped_for_bytes.pop_first();
                }
            }
        }
        while let Some(seq) = inner.finished.front() {
            if inner.executions.contains_key(seq) {
                break;
            }
            inner.finished.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::execution::Status;

    fn done(reg: &Registry, e: &Execution, max: usize, per: usize) {
        e.finish(vec![], vec![], Status::Done, 0, 0, vec![]);
        let limits = Limits {
            max,
            per_registration: per,
            max_bytes: usize::MAX,
        };
        reg.finished(e, &limits);
    }

    /// Finishes `e` with `n` results of 1000 bytes each under a byte bound.
    fn done_with(reg: &Registry, e: &Execution, n: usize, max_bytes: usize) {
        let results = vec![Value::str("r".repeat(1000)); n];
        e.finish(results, vec![], Status::Done, 0, 0, vec![]);
        let limits = Limits {
            max: 1000,
            per_registration: 100,
            max_bytes,
        };
        reg.finished(e, &limits);
    }

    #[test]
    fn results_bounded_in_bytes_oldest_dropped_first() {
        let reg = Registry::new("0".repeat(40));
        let one = Value::str("r".repeat(1000)).approx_size();
        let bound = 10 * one;
        let runs: Vec<_> = (0..4)
            .map(|_| reg.create(None, vec![], RunAs::new("default", 0)))
            .collect();
        let running = reg.create(None, vec![], RunAs::new("default", 0));
        for e in &runs {
            done_with(&reg, e, 4, bound);
        }
        // 4 runs of 4 results against room for 10: the two oldest went, oldest first.
        let kept: Vec<_> = runs.iter().map(|e| reg.get(&e.id).is_some()).collect();
        assert_eq!(kept, vec![false, false, true, true]);
        assert!(reg.dropped_for_bytes(&runs[0].id) && reg.dropped_for_bytes(&runs[1].id));
        assert!(!reg.dropped_for_bytes(&runs[2].id));
        assert_eq!(reg.result_bytes(), 8 * one);
        assert!(
            reg.get(&running.id).is_some(),
            "running executions are never dropped"
        );
        // dropping by hand gives the bytes back and is not "dropped for bytes"
        assert_eq!(reg.drop_execution(&runs[2].id), Ok(()));
        assert_eq!(reg.result_bytes(), 4 * one);
        assert!(!reg.dropped_for_bytes(&runs[2].id));
        // one execution larger than the whole bound does not stay
        let big = reg.create(None, vec![], RunAs::new("default", 0));
        done_with(&reg, &big, 11, bound);
        assert!(reg.get(&big.id).is_none() && reg.dropped_for_bytes(&big.id));
        assert!(reg.get(&runs[3].id).is_none(), "older ones went first");
        assert_eq!(reg.result_bytes(), 0);
    }

    #[test]
    fn trimmed_by_count_gives_its_bytes_back() {
        let reg = Registry::new("0".repeat(40));
        for _ in 0..5 {
            let e = reg.create(Some("r".into()), vec![], RunAs::new("default", 0));
            e.finish(vec![Value::Int(1)], vec![], Status::Done, 0, 0, vec![]);
            let limits = Limits {
                max: 3,
                per_registration: 2,
                max_bytes: usize::MAX,
            };
            reg.finished(&e, &limits);
        }
        assert_eq!(reg.result_bytes(), 2 * Value::Int(1).approx_size());
        reg.drop_registration("r");
        assert_eq!(reg.result_bytes(), 0);
    }

    #[test]
    fn ids_drop_and_trim() {
        let reg = Registry::new("0".repeat(40));
        let a = reg.create(None, vec![], RunAs::new("default", 0));
        let b = reg.create(None, vec![], RunAs::new("default", 0));
        assert_eq!(a.id, format!("{}-1", "0".repeat(40)));
        assert!(reg.get(&b.id).is_some());
        assert!(reg.get("nope").is_none());
        assert_eq!(reg.drop_execution(&a.id), Err(DropError::Running));
        done(&reg, &a, 1, 100);
        let c = reg.create(None, vec![], RunAs::new("default", 0));
        done(&reg, &b, 1, 100);
        assert!(reg.get(&a.id).is_none());
        assert!(reg.get(&b.id).is_some());
        assert!(
            reg.get(&c.id).is_some(),
            "running executions are never trimmed"
        );
        assert_eq!(reg.drop_execution(&b.id), Ok(()));
        assert_eq!(reg.drop_execution(&b.id), Err(DropError::NotFound));
    }

    #[test]
    fn per_registration_bound() {
        let reg = Registry::new("0".repeat(40));
        let mut ids = Vec::new();
        for _ in 0..5 {
            let e = reg.create(Some("r1".into()), vec![], RunAs::new("default", 0));
            done(&reg, &e, 1000, 2);
            ids.push(e.id.clone());
        }
        let other = reg.create(None, vec![], RunAs::new("default", 0));
        done(&reg, &other, 1000, 2);
        let kept: Vec<_> = ids.iter().filter(|id| reg.get(id).is_some()).collect();
        assert_eq!(kept, vec![&ids[3], &ids[4]]);
        assert!(reg.get(&other.id).is_some());
    }
}
