//! A Plan: what a front end (Python, Wasm) asks the engine to run, as a value. Its reader
//! and steps are plain data; user code is referred to by index into the front end's code,
//! which the plan's host holds. `plan_codec` turns a plan into bytes and back.

use std::any::Any;
use std::sync::Arc;

use super::execution::StepReport;
use super::operator::Operator;
use super::reader::Reader;
use super::value::Value;

/// How an execution is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On the main thread, inside the command or event that started it.
    Sync,
    /// On the worker pool; records may move between shards.
    Async,
    /// On the worker pool; every shard keeps its own records.
    AsyncLocal,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "sync" => Some(Mode::Sync),
            "async" => Some(Mode::Async),
            "async_local" => Some(Mode::AsyncLocal),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::AsyncLocal => "async_local",
        }
    }
}

/// An argument of a plan's reader or host step: user code, by its index in the code the
/// plan's host holds (a Python object, a guest callback), or a plain value.
#[derive(Clone, Debug)]
pub enum PlanArg {
    Code(u32),
    Value(Value),
}

/// The primitive operations a host runs (what `plans::expand` makes of the builders').
pub const HOST_OPS: &[&str] = &[
    "map",
    "flatmap",
    "filter",
    "foreach",
    "accumulate",
    "localgroupby",
    "batchgroupby_local",
    "aggregate_local",
    "aggregateby_local",
    "aggregateby_global",
];

/// One step that runs user code in a language host. The engine only groups such steps
/// and hands each group back to its host to be fused into one operator.
#[derive(Clone, Debug)]
pub struct HostStep {
    /// The primitive operation the host runs (one of `HOST_OPS`).
    pub op: &'static str,
    pub args: Vec<PlanArg>,
}

impl HostStep {
    /// The step running `op`, if it is one of `HOST_OPS`.
    pub fn new(op: &str, args: Vec<PlanArg>) -> Option<HostStep> {
        let op = HOST_OPS.iter().find(|o| **o == op)?;
        Some(HostStep { op, args })
    }
}

/// What a fused host run must hand to the operator after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputForm {
    /// Keep host objects as they are: another step of the same host reads them next.
    Keep,
    /// Plain values: a native step that looks at records comes next.
    Values,
    /// Reply values: no host step follows, so convert by the host's reply rules.
    Reply,
}

/// The native (Rust) steps: those that need no user code.
#[derive(Clone, Debug, PartialEq)]
pub enum NativeStep {
    Limit { offset: usize, length: usize },
    LocalCount,
    SumCounts,
    LocalCountBy,
    SumCountsBy,
    Distinct,
    LocalAvg,
    FinalAvg,
    Sort { reverse: bool },
}

/// A local half of a two-phase aggregate that a host may run inside its fused run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combiner {
    /// countby(): `{'key': record, 'value': n}` per distinct record of a batch.
    CountBy,
    /// count(): the number of records of a batch.
    Count,
}

impl Combiner {
    /// The combiner a native step can be replaced by, if any.
    pub fn of(step: &NativeStep) -> Option<Combiner> {
        match step {
            NativeStep::LocalCountBy => Some(Combiner::CountBy),
            NativeStep::LocalCount => Some(Combiner::Count),
            _ => None,
        }
    }

    /// The native step that folds the combiner's partials on this shard.
    pub fn partials(self) -> NativeStep {
        match self {
            Combiner::CountBy => NativeStep::SumCountsBy,
            Combiner::Count => NativeStep::SumCounts,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Combiner::CountBy => "countby",
            Combiner::Count => "count",
        }
    }
}

impl NativeStep {
    /// Whether the step reads record contents (so host objects must become values first).
    pub fn inspects_records(&self) -> bool {
        !matches!(self, NativeStep::Limit { .. } | NativeStep::LocalCount)
    }
}

/// Where records move between stages.
#[derive(Clone, Debug)]
pub enum Exchange {
    /// Every record to the shard that started the execution.
    Collect,
    /// Every record to the shard owning the slot of its key: the key is what the host step
    /// extracts, or the record's 'key' field when there is none.
    Repartition(Option<HostStep>),
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Host(HostStep),
    Native(NativeStep),
    Exchange(Exchange),
}

/// One step of a plan with the text RG.GETEXECUTION shows for it.
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: StepKind,
    /// RG.GETEXECUTION 'type', e.g. "MapStep". (Shared strings: every execution of the
    /// plan starts with a copy of these in its report.)
    pub type_name: Arc<str>,
    /// RG.GETEXECUTION 'name': the callback name.
    pub name: Arc<str>,
    /// RG.GETEXECUTION 'arg'.
    pub arg: Arc<str>,
}

impl Step {
    /// A step with nothing to show in RG.GETEXECUTION (the engine's tests).
    #[cfg(test)]
    pub fn of(kind: StepKind) -> Step {
        Step {
            kind,
            type_name: "".into(),
            name: "".into(),
            arg: "".into(),
        }
    }

    /// The step as RG.GETEXECUTION reports it, before it ran.
    pub fn report(&self) -> StepReport {
        StepReport {
            type_name: self.type_name.clone(),
            name: self.name.clone(),
            arg: self.arg.clone(),
            nanos: 0,
        }
    }
}

/// A language host over one plan's code: it fuses the plan's consecutive host steps into
/// one operator, builds the readers that call user code, and names its code for another
/// shard.
pub trait Host: Send + Sync {
    /// Name used in statistics and in a plan's bytes ("python", "wasm").
    fn name(&self) -> &'static str;
    /// The front end's reference to the code, as a value another shard resolves to a host
    /// of its own (a guest's name and content hash; a Python plan's pickled objects).
    fn reference(&self) -> anyhow::Result<Value>;
    /// One operator running `steps` in order over a batch at a time.
    fn fuse(
        &self,
        steps: &[HostStep],
        output: OutputForm,
        profile: bool,
        sync: bool,
    ) -> anyhow::Result<Box<dyn Operator>>;
    /// As `fuse`, with `combiner` (the local half of a two-phase aggregate that comes
    /// next) run inside the fused run: it outputs partials (`Combiner::partials`) per
    /// batch, one record per key. None when the host cannot.
    fn fuse_combined(
        &self,
        _steps: &[HostStep],
        _combiner: Combiner,
        _profile: bool,
        _sync: bool,
    ) -> anyhow::Result<Option<Box<dyn Operator>>> {
        Ok(None)
    }
    /// The reader of `spec` when it calls this host's code (a Python generator, a guest's
    /// GeneratorReader); None for a reader that needs no user code. `first_step_native`:
    /// the records go to a native step first (so they must be plain values).
    fn reader(
        &self,
        _spec: &ReaderSpec,
        _first_step_native: bool,
    ) -> anyhow::Result<Option<Box<dyn Reader>>> {
        Ok(None)
    }
    /// Prepares a pool worker to run `exec`'s steps (e.g. makes its code interruptible
    /// by RG.ABORTEXECUTION); undone when the returned guard drops.
    fn enter_worker(&self, _exec: &Arc<super::execution::Execution>) -> Box<dyn Any> {
        Box::new(())
    }
}

/// A reader by name with its named arguments (RG.DUMPREGISTRATIONS / run() names).
#[derive(Clone, Debug)]
pub struct ReaderSpec {
    pub name: String,
    pub args: Vec<(String, PlanArg)>,
}

impl ReaderSpec {
    pub fn new(name: impl Into<String>) -> ReaderSpec {
        ReaderSpec {
            name: name.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(&self, name: &str) -> Option<&PlanArg> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Sets (or replaces) an argument.
    pub fn set(&mut self, name: &str, arg: PlanArg) {
        match self.args.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = arg,
            None => self.args.push((name.to_string(), arg)),
        }
    }
}

/// What to run: a reader, steps, a mode, and the host of the front end's code. Built once
/// per run() / job / registration by its front end; executions compile it into stages.
#[derive(Clone)]
pub struct Plan {
    pub reader: ReaderSpec,
    pub steps: Vec<Step>,
    pub mode: Mode,
    /// register()'s desc.
    pub desc: Option<String>,
    /// The host of the plan's user code (None for a plan of native steps only).
    pub host: Option<Arc<dyn Host>>,
}

impl Plan {
    /// The steps as RG.GETEXECUTION reports them before they ran.
    pub fn reports(&self) -> Vec<StepReport> {
        self.steps.iter().map(Step::report).collect()
    }

    /// The step types joined by arrows (RG.DUMPREGISTRATIONS 'PD').
    pub fn text(&self) -> String {
        self.steps
            .iter()
            .map(|s| &*s.type_name)
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// Whether the reader's records go to a native step that reads them first.
    pub fn first_step_native(&self) -> bool {
        matches!(self.steps.first().map(|s| &s.kind), Some(StepKind::Native(n)) if n.inspects_records())
    }
}
