//! The bounded registry of executions that every RG.* execution command reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::execution::{Execution, StepReport};

pub struct Registry {
    shard_id: String,
    next_seq: AtomicU64,
    executions: Mutex<BTreeMap<u64, Arc<Execution>>>,
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
            executions: Mutex::new(BTreeMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Execution>>> {
        self.executions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new execution with the next id, kept until dropped or trimmed.
    pub fn create(&self, registered: bool, steps: Vec<StepReport>) -> Arc<Execution> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}", self.shard_id, seq);
        let exec = Arc::new(Execution::new(id, seq, registered, steps));
        self.map().insert(seq, exec.clone());
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
        self.map().get(&seq).cloned()
    }

    /// Forgets an execution that never ran (e.g. its script failed after run()).
    pub fn forget(&self, exec: &Execution) {
        self.map().remove(&exec.seq);
    }

    /// RG.DROPEXECUTION: only finished executions can be dropped.
    pub fn drop_execution(&self, id: &str) -> Result<(), DropError> {
        let seq = self.seq_of(id).ok_or(DropError::NotFound)?;
        let mut map = self.map();
        let exec = map.get(&seq).ok_or(DropError::NotFound)?;
        if !exec.status().is_finished() {
            return Err(DropError::Running);
        }
        map.remove(&seq);
        Ok(())
    }

    /// Every execution, oldest first.
    pub fn list(&self) -> Vec<Arc<Execution>> {
        self.map().values().cloned().collect()
    }

    /// Drops the oldest finished executions until at most `max` finished ones remain.
    pub fn trim(&self, max: usize) {
        let mut map = self.map();
        let finished: Vec<u64> = map
            .iter()
            .filter(|(_, e)| e.status().is_finished())
            .map(|(s, _)| *s)
            .collect();
        if finished.len() > max {
            for seq in &finished[..finished.len() - max] {
                map.remove(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::execution::Status;

    #[test]
    fn ids_drop_and_trim() {
        let reg = Registry::new("0".repeat(40));
        let a = reg.create(false, vec![]);
        let b = reg.create(false, vec![]);
        assert_eq!(a.id, format!("{}-1", "0".repeat(40)));
        assert!(reg.get(&b.id).is_some());
        assert!(reg.get("nope").is_none());
        assert_eq!(reg.drop_execution(&a.id), Err(DropError::Running));
        a.finish(vec![], vec![], Status::Done, 0, 0, vec![]);
        b.finish(vec![], vec![], Status::Done, 0, 0, vec![]);
        let c = reg.create(false, vec![]);
        reg.trim(1);
        assert!(reg.get(&a.id).is_none());
        assert!(reg.get(&b.id).is_some());
        assert!(
            reg.get(&c.id).is_some(),
            "running executions are never trimmed"
        );
        assert_eq!(reg.drop_execution(&b.id), Ok(()));
        assert_eq!(reg.drop_execution(&b.id), Err(DropError::NotFound));
    }
}
