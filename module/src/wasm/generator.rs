//! GeneratorReader: a guest's generator callback is the reader (Python's PythonReader).

use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::program::Program;
use super::runtime::{Fault, GuestInstance};
use crate::engine::codec;
use crate::engine::reader::Reader;
use crate::engine::value::Value;

pub struct GuestGenerator {
    program: Arc<Program>,
    callback: u32,
    args: Vec<String>,
    open: Option<(GuestInstance, u32)>,
    done: bool,
}

impl GuestGenerator {
    pub fn new(program: Arc<Program>, callback: u32, args: Vec<String>) -> Self {
        GuestGenerator {
            program,
            callback,
            args,
            open: None,
            done: false,
        }
    }
}

fn error_of(fault: Fault) -> anyhow::Error {
    match fault {
        Fault::Aborted => anyhow!("Execution was aborted"),
        Fault::Trapped(e) | Fault::Error(e) => anyhow!(e),
    }
}

impl Reader for GuestGenerator {
    fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        if self.open.is_none() {
            let mut live = self.program.checkout().map_err(error_of)?;
            let (cb, args) = (self.callback, self.args.clone());
            let handle = live
                .call(|g, s| g.redisgears_guest_plans().call_open_generator(s, cb, &args))
                .map_err(error_of)?;
            self.open = Some((live, handle));
        }
        let Some((live, handle)) = self.open.as_mut() else {
            return Ok(None);
        };
        let h = *handle;
        let n = max.clamp(1, u32::MAX as usize) as u32;
        let packed = match live.call(|g, s| g.redisgears_guest_plans().call_next_records(s, h, n)) {
            Ok(p) => p,
            Err(fault) => {
                self.open = None;
                self.done = true;
                return Err(error_of(fault));
            }
        };
        let records = codec::decode_batch(&packed)?;
        if records.is_empty() {
            self.done = true;
            self.finish();
            return Ok(None);
        }
        Ok(Some(records))
    }
}

impl GuestGenerator {
    fn finish(&mut self) {
        if let Some((live, h)) = self.open.take() {
            self.program.release(live, h);
        }
    }
}

impl Drop for GuestGenerator {
    fn drop(&mut self) {
        self.finish();
    }
}
