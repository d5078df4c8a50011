//! A Plan: what a front end (Python, later Wasm) asks the engine to run.

use std::any::Any;
use std::sync::Arc;

use super::operator::Operator;
use super::reader::Reader;

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

/// One step that runs user code in a language host. The engine only groups such steps
/// and hands each group back to its host to be fused into one operator.
#[derive(Clone)]
pub struct HostStep {
    /// The primitive operation the host runs (e.g. "map", "localgroupby").
    pub op: &'static str,
    /// The host's own data for the step (for Python: the callables).
    pub payload: Arc<dyn Any + Send + Sync>,
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
#[derive(Clone)]
pub enum Exchange {
    /// Every record to the shard that started the execution.
    Collect,
    /// Every record to the shard owning the slot of its key: the key is what the host step
    /// extracts, or the record's 'key' field when there is none.
    Repartition(Option<HostStep>),
}

#[derive(Clone)]
pub enum StepKind {
    Host(HostStep),
    Native(NativeStep),
    Exchange(Exchange),
}

/// One step of a plan with the text RG.GETEXECUTION shows for it.
#[derive(Clone)]
pub struct Step {
    pub kind: StepKind,
    /// RG.GETEXECUTION 'type', e.g. "MapStep".
    pub type_name: String,
    /// RG.GETEXECUTION 'name': the callback name.
    pub name: String,
    /// RG.GETEXECUTION 'arg'.
    pub arg: String,
}

impl Step {
    /// A step with nothing to show in RG.GETEXECUTION (the engine's tests).
    #[cfg(test)]
    pub fn of(kind: StepKind) -> Step {
        Step {
            kind,
            type_name: String::new(),
            name: String::new(),
            arg: String::new(),
        }
    }

    /// The step as RG.GETEXECUTION reports it, before it ran.
    pub fn report(&self) -> super::execution::StepReport {
        super::execution::StepReport {
            type_name: self.type_name.clone(),
            name: self.name.clone(),
            arg: self.arg.clone(),
            nanos: 0,
        }
    }
}

/// A language host able to fuse its consecutive steps into one operator.
pub trait Host: Send + Sync {
    /// Name used in statistics ("python").
    fn name(&self) -> &'static str;
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
    /// Prepares a pool worker to run `exec`'s steps (e.g. makes its code interruptible
    /// by RG.ABORTEXECUTION); undone when the returned guard drops.
    fn enter_worker(&self, _exec: &Arc<super::execution::Execution>) -> Box<dyn Any> {
        Box::new(())
    }
}

/// A reader and a list of steps, ready to be compiled into stages.
pub struct Plan {
    pub reader: Box<dyn Reader>,
    /// RG.GETEXECUTION / RG.DUMPREGISTRATIONS name of the reader.
    pub reader_name: String,
    pub steps: Vec<Step>,
    pub mode: Mode,
    pub host: Option<Arc<dyn Host>>,
    pub desc: Option<String>,
}
