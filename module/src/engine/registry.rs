//! The bounded registry of executions that every RG.* execution command reads.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::execution::{Execution, RunAs, StepReport};

#[derive(Default)]
struct Inner {
    executions: BTreeMap<u64, Arc<Execution>>,
    /// Finished executions in the order they finished (some may be dropped already).
    finished: VecDeque<u64>,
    /// The same per registration.
    finished_by_registration: HashMap<String, VecDeque<u64>>,
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

    fn seq_of(&self, id: &str) -> Option<u64> {
        let (shard, seq) = id.rsplit_once('-')?;
        if shard != self.shard_id {
            return None;
        }
        seq.parse().ok()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Execution>> {
        let seq = self.seq_of(id)?;
        self.inner().executions.get(&seq).cloned()
    }

    /// Forgets an execution that never ran (e.g. its script failed after run()).
    pub fn forget(&self, exec: &Execution) {
        self.inner().executions.remove(&exec.seq);
    }

    /// RG.DROPEXECUTION: only finished executions can be dropped.
    pub fn drop_execution(&self, id: &str) -> Result<(), DropError> {
        let seq = self.seq_of(id).ok_or(DropError::NotFound)?;
        let mut inner = self.inner();
        let exec = inner.executions.get(&seq).ok_or(DropError::NotFound)?;
        if !exec.status().is_finished() {
            return Err(DropError::Running);
        }
        inner.executions.remove(&seq);
        Ok(())
    }

    /// Forgets the finished executions of a registration that is gone.
    pub fn drop_registration(&self, registration: &str) {
        let mut inner = self.inner();
        let inner = &mut *inner;
        if let Some(seqs) = inner.finished_by_registration.remove(registration) {
            for seq in seqs {
                inner.executions.remove(&seq);
            }
        }
    }

    /// Every execution, oldest first.
    pub fn list(&self) -> Vec<Arc<Execution>> {
        self.inner().executions.values().cloned().collect()
    }

    /// Notes that `exec` finished, then drops the oldest finished executions beyond `max`
    /// in all and beyond `per_registration` of its registration.
    pub fn finished(&self, exec: &Execution, max: usize, per_registration: usize) {
        let mut inner = self.inner();
        let inner = &mut *inner;
        if !inner.executions.contains_key(&exec.seq) {
            return;
        }
        inner.finished.push_back(exec.seq);
        if let Some(reg) = &exec.registration {
            let queue = inner
                .finished_by_registration
                .entry(reg.clone())
                .or_default();
            queue.push_back(exec.seq);
            while queue.len() > per_registration {
                if let Some(seq) = queue.pop_front() {
                    inner.executions.remove(&seq);
                }
            }
            if queue.is_empty() {
                inner.finished_by_registration.remove(reg);
            }
        }
        // Dropped entries linger in `finished` until they reach its front.
        while inner.finished.len() > max {
            let Some(seq) = inner.finished.pop_front() else {
                break;
            };
            inner.executions.remove(&seq);
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
        reg.finished(e, max, per);
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
