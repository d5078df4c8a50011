//! The Wasm host: a fused run of consecutive guest steps is one guest call per batch.

use std::sync::Arc;
use std::time::Instant;

use super::bindings::types::FusedStep;
use super::program::Program;
use super::runtime::{Fault, GuestInstance};
use crate::engine::codec;
use crate::engine::operator::{push_first, push_stateless, Events, Operator, RunCtx, Stop};
use crate::engine::spares::{SpareKey, Spares};
use crate::engine::value::Value;

/// The spare runs of a guest's plan: open runs of stateless steps (`SpareKey::stateless`)
/// whose last call succeeded. Such a run holds nothing between batches, so the next run
/// of the same steps goes on with it: no `open-run`, `finish` and `close` per run (a
/// trigger's event), and its instance stays checked out meanwhile.
pub type GuestSpares = Spares<Open>;

/// One guest call per batch running `steps` of `program` in order; with `spare`, runs
/// of stateless steps are kept there for the next run.
pub fn operator(
    program: Arc<Program>,
    steps: Vec<FusedStep>,
    profile: bool,
    spare: Option<(Arc<GuestSpares>, SpareKey)>,
) -> Box<dyn Operator> {
    Box::new(FusedOp {
        program,
        steps,
        open: None,
        calling: false,
        clean: false,
        spare: spare.filter(|(_, key)| key.stateless() && !profile),
        profile,
        nanos: 0,
    })
}

/// The instance a run holds from its first batch to its end, and the guest's handle.
pub struct Open {
    live: GuestInstance,
    handle: u32,
}

struct FusedOp {
    program: Arc<Program>,
    steps: Vec<FusedStep>,
    open: Option<Open>,
    /// The last guest call returned well: the open run may serve another run.
    clean: bool,
    spare: Option<(Arc<GuestSpares>, SpareKey)>,
    /// Set across a guest call: still set when the op is dropped, the call never
    /// returned (a host call panicked), so the instance is not fit to be reused.
    calling: bool,
    profile: bool,
    nanos: u64,
}

fn stop_of(fault: Fault) -> Stop {
    match fault {
        Fault::Aborted => Stop::Aborted,
        Fault::Trapped(e) | Fault::Error(e) => Stop::Failed(e),
    }
}

impl FusedOp {
    fn open(&mut self) -> Result<&mut Open, Stop> {
        if self.open.is_none() {
            self.open = self
                .spare
                .as_ref()
                .and_then(|(spares, key)| spares.take(key));
        }
        if self.open.is_none() {
            let mut live = self.program.checkout().map_err(stop_of)?;
            let steps = self.steps.clone();
            let handle = live
                .call(|g, s| g.redisgears_guest_plans().call_open_run(s, &steps))
                .map_err(stop_of)?;
            self.open = Some(Open { live, handle });
        }
        self.open
            .as_mut()
            .ok_or_else(|| Stop::Failed("no guest instance".into()))
    }

    /// Runs one guest call of the open run; a trap drops the instance.
    fn call(
        &mut self,
        cx: &mut RunCtx,
        f: impl FnOnce(&mut GuestInstance, u32) -> Result<super::bindings::types::BatchOut, Fault>,
    ) -> Result<Vec<Value>, Stop> {
        cx.count_entry("wasm");
        let t0 = self.profile.then(Instant::now);
        let handle = self.open()?.handle;
        self.calling = true;
        self.clean = false;
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| Stop::Failed("no guest instance".into()))?;
        let out = f(&mut open.live, handle);
        self.calling = false;
        let out = match out {
            Ok(out) => {
                self.clean = true;
                out
            }
            Err(fault) => {
                if let Fault::Trapped(e) = &fault {
                    let name = &self.program.name;
                    crate::redis::log::warning(&format!("trap {name}"), || {
                        format!("guest {name} trapped: {e}")
                    });
                }
                if let (Fault::Error(_), Some(open)) = (&fault, self.open.take()) {
                    self.close(open);
                }
                // Any other fault: the instance is dropped with `self.open`.
                self.open = None;
                return Err(stop_of(fault));
            }
        };
        if let Some(t0) = t0 {
            self.nanos += t0.elapsed().as_nanos() as u64;
        }
        cx.errors.extend(out.errors);
        codec::decode_batch(&out.records)
            .map_err(|e| Stop::Failed(format!("the guest returned a bad batch: {e}")))
    }

    fn close(&self, open: Open) {
        self.program.release(open.live, open.handle);
    }

    /// Ends the open run: kept as a spare when it may serve another, else closed.
    fn end(&mut self, open: Open) {
        let open = match (&self.spare, self.clean) {
            (Some((spares, key)), true) => spares.give(key.clone(), open),
            _ => Some(open),
        };
        if let Some(open) = open {
            self.close(open);
        }
    }
}

impl Operator for FusedOp {
    fn push(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        let records = codec::encode_batch(&batch);
        drop(batch);
        self.call(cx, |live, h| {
            live.call(|g, s| g.redisgears_guest_plans().call_push(s, h, &records))
        })
    }

    fn finish(&mut self, cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        if self.open.is_none() {
            // No batch came: stateful steps hold nothing.
            return Ok(Vec::new());
        }
        if self.spare.is_some() && self.clean {
            // Stateless steps: nothing to flush, and the run goes on for the next one.
            if let Some(open) = self.open.take() {
                self.end(open);
            }
            return Ok(Vec::new());
        }
        let out = self.call(cx, |live, h| {
            live.call(|g, s| g.redisgears_guest_plans().call_finish(s, h))
        })?;
        if let Some(open) = self.open.take() {
            self.close(open);
        }
        Ok(out)
    }

    /// Stateless steps hold nothing between batches: the open run goes on with the next
    /// event's records (one instance and one open run for all of them).
    fn push_each(&mut self, events: &mut dyn Events) -> usize {
        match self.spare {
            Some(_) => push_stateless(self, events),
            None => push_first(self, events),
        }
    }

    fn step_nanos(&self) -> Vec<u64> {
        // The guest runs its steps in one call: the run's time goes to its first step.
        let mut nanos = vec![0; self.steps.len()];
        if let Some(first) = nanos.first_mut() {
            *first = self.nanos;
        }
        nanos
    }
}

impl Drop for FusedOp {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            if !self.calling {
                self.end(open);
            }
        }
    }
}
