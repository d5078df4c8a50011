//! Native readers: where an execution's records come from.

pub mod keys;
pub mod shards;
pub mod stream;

use crate::engine::value::Value;
use crate::redis::{call::call, lock};

/// Runs a command for a reader on a worker or the main thread (taking the lock slice).
pub(crate) fn redis_call(args: &[&[u8]]) -> anyhow::Result<Value> {
    lock::ensure_locked();
    match call(&lock::context(), args) {
        Value::Error(e) => Err(anyhow::anyhow!(
            "{} failed: {e}",
            String::from_utf8_lossy(args[0])
        )),
        v => Ok(v),
    }
}
