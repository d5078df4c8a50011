//! The operations of SPEC.md as engine steps: language steps (fused by their host), native
//! steps and the exchanges where records move between shards. Every front end (Python,
//! Wasm) turns its recorded operations into `Op`s and expands them here, so both get the
//! same plans.

use crate::engine::plan::{Exchange, HostStep, NativeStep, Step, StepKind};

/// One operation of a builder; `A` is a front end's argument (a callable, a value).
pub enum Op<A> {
    Map(A),
    FlatMap(A),
    Filter(A),
    ForEach(A),
    Accumulate(A),
    LocalGroupBy {
        extract: A,
        reduce: A,
    },
    Limit {
        length: usize,
        offset: usize,
    },
    Collect,
    Repartition(A),
    GroupBy {
        extract: A,
        reduce: A,
    },
    BatchGroupBy {
        extract: A,
        reduce: A,
    },
    Aggregate {
        zero: A,
        seq: A,
        comb: A,
    },
    AggregateBy {
        extract: A,
        zero: A,
        seq: A,
        comb: A,
    },
    Count,
    CountBy(Option<A>),
    Distinct,
    Avg(Option<A>),
    Sort {
        reverse: bool,
    },
}

/// What a front end supplies to expand its operations.
pub trait StepSource {
    type Arg: Clone;
    /// A language step running the fused primitive `op` over these arguments.
    fn host_step(&self, op: &'static str, args: Vec<Self::Arg>) -> Result<HostStep, String>;
    /// The callback name and argument text RG.GETEXECUTION shows for a step.
    fn describe(&self, callback: Option<&Self::Arg>) -> (String, String);
}

struct Expander<'s, S: StepSource> {
    src: &'s S,
    steps: Vec<Step>,
}

impl<S: StepSource> Expander<'_, S> {
    /// A language step, shown with the name of `shown`.
    fn host(
        &mut self,
        op: &'static str,
        type_name: &str,
        args: Vec<S::Arg>,
        shown: &S::Arg,
    ) -> Result<(), String> {
        let step = self.src.host_step(op, args)?;
        let (name, arg) = self.src.describe(Some(shown));
        self.push(StepKind::Host(step), type_name, name, arg);
        Ok(())
    }

    fn push(&mut self, kind: StepKind, type_name: &str, name: String, arg: String) {
        self.steps.push(Step {
            kind,
            type_name: type_name.into(),
            name: name.into(),
            arg: arg.into(),
        });
    }

    fn native(&mut self, step: NativeStep, type_name: &str, arg: &str) {
        self.push(StepKind::Native(step), type_name, String::new(), arg.into());
    }

    fn collect(&mut self) {
        self.push(
            StepKind::Exchange(Exchange::Collect),
            "CollectStep",
            String::new(),
            String::new(),
        );
    }

    fn repartition(&mut self, extract: Option<&S::Arg>) -> Result<(), String> {
        let by = match extract {
            Some(e) => Some(self.src.host_step("map", vec![e.clone()])?),
            None => None,
        };
        let (name, arg) = self.src.describe(extract);
        self.push(
            StepKind::Exchange(Exchange::Repartition(by)),
            "RepartitionStep",
            name,
            arg,
        );
        Ok(())
    }

    /// A native step that runs per shard, then once more over what every shard sent.
    fn two_phase(&mut self, local: NativeStep, global: NativeStep, type_name: &str, arg: &str) {
        self.native(local, type_name, arg);
        self.collect();
        self.native(global, type_name, arg);
    }

    fn op(&mut self, op: Op<S::Arg>) -> Result<(), String> {
        match op {
            Op::Map(f) => self.host("map", "MapStep", vec![f.clone()], &f)?,
            Op::FlatMap(f) => self.host("flatmap", "FlatMapStep", vec![f.clone()], &f)?,
            Op::Filter(f) => self.host("filter", "FilterStep", vec![f.clone()], &f)?,
            Op::ForEach(f) => self.host("foreach", "ForEachStep", vec![f.clone()], &f)?,
            Op::Accumulate(f) => self.host("accumulate", "AccumulateStep", vec![f.clone()], &f)?,
            Op::LocalGroupBy { extract, reduce } => self.host(
                "localgroupby",
                "AccumulateByKeyStep",
                vec![extract.clone(), reduce],
                &extract,
            )?,
            Op::Limit { length, offset } => self.native(
                NativeStep::Limit { offset, length },
                "LimitStep",
                &format!("{length}, {offset}"),
            ),
            Op::Collect => self.collect(),
            Op::Repartition(extract) => self.repartition(Some(&extract))?,
            Op::GroupBy { extract, reduce } => {
                self.repartition(Some(&extract))?;
                self.host(
                    "localgroupby",
                    "AccumulateByKeyStep",
                    vec![extract.clone(), reduce],
                    &extract,
                )?;
            }
            Op::BatchGroupBy { extract, reduce } => {
                self.repartition(Some(&extract))?;
                self.host(
                    "batchgroupby_local",
                    "GroupStep",
                    vec![extract.clone(), reduce],
                    &extract,
                )?;
            }
            Op::Aggregate { zero, seq, comb } => {
                self.host(
                    "aggregate_local",
                    "AccumulateStep",
                    vec![zero.clone(), seq.clone()],
                    &seq,
                )?;
                self.collect();
                self.host(
                    "aggregate_local",
                    "AccumulateStep",
                    vec![zero, comb.clone()],
                    &comb,
                )?;
            }
            Op::AggregateBy {
                extract,
                zero,
                seq,
                comb,
            } => {
                self.host(
                    "aggregateby_local",
                    "AccumulateByKeyStep",
                    vec![extract.clone(), zero.clone(), seq],
                    &extract,
                )?;
                self.repartition(None)?;
                self.host(
                    "aggregateby_global",
                    "AccumulateByKeyStep",
                    vec![zero, comb.clone()],
                    &comb,
                )?;
            }
            Op::Count => self.two_phase(
                NativeStep::LocalCount,
                NativeStep::SumCounts,
                "AccumulateStep",
                "count",
            ),
            Op::CountBy(extract) => {
                if let Some(e) = extract {
                    self.host("map", "ExtractKeyStep", vec![e.clone()], &e)?;
                }
                let t = "AccumulateByKeyStep";
                self.native(NativeStep::LocalCountBy, t, "countby");
                self.repartition(None)?;
                self.native(NativeStep::SumCountsBy, t, "countby");
            }
            Op::Distinct => self.two_phase(
                NativeStep::Distinct,
                NativeStep::Distinct,
                "AccumulateStep",
                "distinct",
            ),
            Op::Avg(extract) => {
                if let Some(e) = extract {
                    self.host("map", "MapStep", vec![e.clone()], &e)?;
                }
                self.two_phase(
                    NativeStep::LocalAvg,
                    NativeStep::FinalAvg,
                    "AccumulateStep",
                    "avg",
                );
            }
            Op::Sort { reverse } => {
                let shown = format!("sort {}", if reverse { "reverse" } else { "" });
                let step = NativeStep::Sort { reverse };
                self.two_phase(step.clone(), step, "AccumulateStep", &shown);
            }
        }
        Ok(())
    }
}

/// Engine steps for a builder's operations, in order.
pub fn expand<S: StepSource>(src: &S, ops: Vec<Op<S::Arg>>) -> Result<Vec<Step>, String> {
    let mut x = Expander {
        src,
        steps: Vec::new(),
    };
    for op in ops {
        x.op(op)?;
    }
    Ok(x.steps)
}
