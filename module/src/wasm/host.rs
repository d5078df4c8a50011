//! The Wasm host of one guest's plans: fused runs of its callbacks, its GeneratorReader,
//! and the guest named by name and content hash for another shard.

use std::sync::Arc;

use anyhow::{anyhow, bail};

use super::bindings::types::FusedStep;
use super::fused;
use super::generator::GuestGenerator;
use super::program::Program;
use crate::engine::codec;
use crate::engine::operator::Operator;
use crate::engine::plan::{Combiner, Host, HostStep, OutputForm, PlanArg, ReaderSpec};
use crate::engine::reader::Reader;
use crate::engine::spares::SpareKey;
use crate::engine::value::Value;
use crate::plans::args::Args;

pub struct WasmHost {
    /// The guest whose callbacks the plan's `PlanArg::Code` indices are.
    pub program: Arc<Program>,
    /// Open runs of this plan's stateless steps, for its next runs.
    spares: Arc<fused::GuestSpares>,
}

impl WasmHost {
    pub fn of(program: Arc<Program>) -> Arc<dyn Host> {
        Arc::new(WasmHost {
            program,
            spares: Arc::default(),
        })
    }

    /// The host of a plan another shard encoded: the guest `find` gives for its name
    /// (this shard's guests, or one being uploaded), if it has the same bytes.
    pub fn resolve(
        reference: &Value,
        find: &dyn Fn(&str) -> Option<Arc<Program>>,
    ) -> anyhow::Result<Arc<dyn Host>> {
        let (Some(Value::Str(name)), Some(Value::Str(hash))) =
            (reference.get("guest"), reference.get("hash"))
        else {
            bail!("a guest plan without its guest's name and hash");
        };
        match find(name) {
            Some(p) if p.hash == *hash => Ok(WasmHost::of(p)),
            Some(_) => bail!("guest '{name}' here is not the one the plan was made of"),
            None => bail!("guest '{name}' does not exist here"),
        }
    }
}

/// A step of the guest's fused run: its callbacks, and its zero value as MessagePack.
fn fused_step(step: &HostStep) -> FusedStep {
    let mut callbacks = Vec::new();
    let mut zero = None;
    for a in &step.args {
        match a {
            PlanArg::Code(i) => callbacks.push(*i),
            PlanArg::Value(v) => zero = Some(codec::encode_one(v)),
        }
    }
    FusedStep {
        op: step.op.to_string(),
        callbacks,
        zero,
    }
}

impl Host for WasmHost {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn reference(&self) -> anyhow::Result<Value> {
        Ok(Value::Map(vec![
            (Value::str("guest"), Value::str(self.program.name.as_str())),
            (Value::str("hash"), Value::str(self.program.hash.as_str())),
        ]))
    }

    fn fuse(
        &self,
        steps: &[HostStep],
        _output: OutputForm,
        profile: bool,
        _sync: bool,
    ) -> anyhow::Result<Box<dyn Operator>> {
        if steps.is_empty() {
            bail!("an empty fused run");
        }
        let spare = SpareKey::of(steps, 0).map(|k| (self.spares.clone(), k));
        let steps = steps.iter().map(fused_step).collect();
        Ok(fused::operator(self.program.clone(), steps, profile, spare))
    }

    fn fuse_combined(
        &self,
        steps: &[HostStep],
        combiner: Combiner,
        profile: bool,
        _sync: bool,
    ) -> anyhow::Result<Option<Box<dyn Operator>>> {
        // Guests built for contract 1.2 or later run the combiners (a fused step).
        if steps.is_empty() || !self.program.speaks(1, 2) {
            return Ok(None);
        }
        let mut fused: Vec<FusedStep> = steps.iter().map(fused_step).collect();
        fused.push(FusedStep {
            op: format!("combine_{}", combiner.as_str()),
            callbacks: Vec::new(),
            zero: None,
        });
        Ok(Some(fused::operator(
            self.program.clone(),
            fused,
            profile,
            None,
        )))
    }

    fn reader(
        &self,
        spec: &ReaderSpec,
        _first_step_native: bool,
    ) -> anyhow::Result<Option<Box<dyn Reader>>> {
        if spec.name != "GeneratorReader" {
            return Ok(None);
        }
        let Some(PlanArg::Code(callback)) = spec.arg("generator") else {
            return Err(anyhow!("GeneratorReader needs a generator callback"));
        };
        // RG.WASMRUN's arguments (job_plan puts them there).
        let args = spec
            .texts("args")
            .map_err(anyhow::Error::msg)?
            .unwrap_or_default();
        Ok(Some(Box::new(GuestGenerator::new(
            self.program.clone(),
            *callback,
            args,
        ))))
    }
}
