//! The source of an execution's records.

use super::value::Value;

pub trait Reader: Send {
    /// Up to `max` records, or None at the end. An error ends the execution's reading
    /// and becomes one of its errors.
    fn next_batch(&mut self, max: usize) -> anyhow::Result<Option<Vec<Value>>>;
}

/// A reader over records already in memory (stage inputs, tests).
pub struct VecReader {
    records: std::vec::IntoIter<Value>,
}

impl VecReader {
    pub fn new(records: Vec<Value>) -> Self {
        VecReader {
            records: records.into_iter(),
        }
    }
}

impl Reader for VecReader {
    fn next_batch(&mut self, max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        let batch: Vec<Value> = self.records.by_ref().take(max.max(1)).collect();
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}
