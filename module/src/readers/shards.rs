//! ShardsIDReader: one record per shard, its id.

use crate::engine::reader::Reader;
use crate::engine::value::Value;

pub struct ShardsIdReader {
    shard_id: Option<String>,
}

impl ShardsIdReader {
    pub fn new(shard_id: String) -> Self {
        ShardsIdReader {
            shard_id: Some(shard_id),
        }
    }
}

impl Reader for ShardsIdReader {
    fn next_batch(&mut self, _max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        Ok(self.shard_id.take().map(|id| vec![Value::Str(id)]))
    }
}
