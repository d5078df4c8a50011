//! Compiling a plan's steps into stages: cut where records move between shards, with
//! consecutive host steps fused into one operator.

use std::sync::Arc;

use super::native;
use super::operator::Operator;
use super::plan::{Combiner, Exchange, Host, HostStep, OutputForm, Plan, Step, StepKind};

/// A part of an execution that runs on every shard without moving records.
pub struct Stage {
    pub ops: Vec<Box<dyn Operator>>,
    /// For each operator, the indices of the plan steps it covers.
    pub op_steps: Vec<Vec<usize>>,
    /// How the stage's output moves on (None for the last stage).
    pub exchange: Option<Exchange>,
    /// A repartition's key extractor, run over the stage's output when records move
    /// between shards (on one shard they stay where they are and it never runs).
    pub extract: Option<Box<dyn Operator>>,
}

impl Stage {
    fn empty() -> Stage {
        Stage {
            ops: Vec::new(),
            op_steps: Vec::new(),
            exchange: None,
            extract: None,
        }
    }
}

impl Plan {
    /// The stages of one execution (fresh operators: each execution owns its own).
    pub fn compile(&self, profile: bool, sync: bool) -> anyhow::Result<Vec<Stage>> {
        compile(&self.steps, self.host.as_ref(), profile, sync)
    }
}

/// The stages as one: for runs whose records never leave their shard (sync and
/// async_local modes, a shard alone), the exchanges are dropped.
pub fn without_exchanges(stages: Vec<Stage>) -> Vec<Stage> {
    if stages.len() <= 1 {
        return stages;
    }
    let mut one = Stage::empty();
    for stage in stages {
        one.ops.extend(stage.ops);
        one.op_steps.extend(stage.op_steps);
    }
    vec![one]
}

/// The fused group of host steps ending before `end`, starting at `start`.
struct Group {
    start: usize,
    steps: Vec<HostStep>,
}

/// What a host run must output, from the steps that follow it.
fn output_form(steps: &[Step], after: usize) -> OutputForm {
    let mut later_host = false;
    let mut inspected = false;
    for step in &steps[after..] {
        match &step.kind {
            StepKind::Host(_) => {
                later_host = true;
                break;
            }
            StepKind::Native(n) if n.inspects_records() => inspected = true,
            StepKind::Exchange(Exchange::Repartition(None)) => inspected = true,
            _ => {}
        }
    }
    if inspected {
        OutputForm::Values
    } else if later_host {
        OutputForm::Keep
    } else {
        OutputForm::Reply
    }
}

pub fn compile(
    steps: &[Step],
    host: Option<&Arc<dyn Host>>,
    profile: bool,
    sync: bool,
) -> anyhow::Result<Vec<Stage>> {
    let mut stages = Vec::new();
    let mut stage = Stage::empty();
    let mut group: Option<Group> = None;
    let host = || host.ok_or_else(|| anyhow::anyhow!("a plan with user steps has no host"));

    // Fuses the pending group of host steps, ending before step `end`; with `combiner`
    // (the native step at `end` is its local half) when the host runs it inside: then
    // true, and the native step only folds the partials.
    let flush = |group: &mut Option<Group>,
                 stage: &mut Stage,
                 end: usize,
                 combiner: Option<Combiner>|
     -> anyhow::Result<bool> {
        let Some(g) = group.take() else {
            return Ok(false);
        };
        let host = host()?;
        let combined = match combiner {
            Some(c) => host.fuse_combined(&g.steps, c, profile, sync)?,
            None => None,
        };
        let absorbed = combined.is_some();
        let op = match combined {
            Some(op) => op,
            None => host.fuse(&g.steps, output_form(steps, end), profile, sync)?,
        };
        stage.ops.push(op);
        stage.op_steps.push((g.start..end).collect());
        Ok(absorbed)
    };

    for (i, step) in steps.iter().enumerate() {
        match &step.kind {
            StepKind::Host(h) => group
                .get_or_insert_with(|| Group {
                    start: i,
                    steps: Vec::new(),
                })
                .steps
                .push(h.clone()),
            StepKind::Native(n) => {
                let combiner = Combiner::of(n);
                let native = match combiner {
                    Some(c) if flush(&mut group, &mut stage, i, Some(c))? => c.partials(),
                    _ => {
                        flush(&mut group, &mut stage, i, None)?;
                        n.clone()
                    }
                };
                stage.ops.push(native::operator(&native));
                stage.op_steps.push(vec![i]);
            }
            StepKind::Exchange(x) => {
                flush(&mut group, &mut stage, i, None)?;
                if let Exchange::Repartition(Some(by)) = x {
                    let by = std::slice::from_ref(by);
                    stage.extract = Some(host()?.fuse(by, OutputForm::Values, false, sync)?);
                }
                stage.exchange = Some(x.clone());
                stages.push(std::mem::replace(&mut stage, Stage::empty()));
            }
        }
    }
    flush(&mut group, &mut stage, steps.len(), None)?;
    stages.push(stage);
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::operator::Pass;
    use crate::engine::plan::NativeStep;
    use crate::engine::value::Value;
    use std::sync::Mutex;

    /// A host that records the groups it was asked to fuse.
    struct FakeHost(Mutex<Vec<(Vec<&'static str>, OutputForm)>>);
    impl Host for FakeHost {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn reference(&self) -> anyhow::Result<Value> {
            Ok(Value::Nil)
        }
        fn fuse(
            &self,
            s: &[HostStep],
            o: OutputForm,
            _: bool,
            _: bool,
        ) -> anyhow::Result<Box<dyn Operator>> {
            self.0
                .lock()
                .unwrap()
                .push((s.iter().map(|h| h.op).collect(), o));
            Ok(Box::new(Pass))
        }
    }

    fn host(op: &'static str) -> Step {
        step(StepKind::Host(HostStep {
            op,
            args: Vec::new(),
        }))
    }
    fn step(kind: StepKind) -> Step {
        Step::of(kind)
    }

    #[test]
    fn fuses_runs_and_cuts_at_exchanges() {
        let steps = vec![
            host("map"),
            host("filter"),
            host("flatmap"),
            step(StepKind::Native(NativeStep::LocalCountBy)),
            step(StepKind::Exchange(Exchange::Repartition(None))),
            step(StepKind::Native(NativeStep::SumCountsBy)),
            host("map"),
            step(StepKind::Exchange(Exchange::Collect)),
        ];
        let fake = Arc::new(FakeHost(Mutex::new(vec![])));
        let h: Arc<dyn Host> = fake.clone();
        let stages = compile(&steps, Some(&h), false, false).unwrap();
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[0].ops.len(), 2);
        assert_eq!(stages[0].op_steps[0], vec![0, 1, 2]);
        assert_eq!(stages[1].ops.len(), 2);
        assert!(stages[2].ops.is_empty());
        let groups = fake.0.lock().unwrap().clone();
        assert_eq!(
            groups,
            vec![
                (vec!["map", "filter", "flatmap"], OutputForm::Values),
                (vec!["map"], OutputForm::Reply),
            ]
        );
    }

    #[test]
    fn host_runs_keep_objects_across_a_limit() {
        let steps = vec![
            host("map"),
            step(StepKind::Native(NativeStep::Limit {
                offset: 0,
                length: 1,
            })),
            host("map"),
        ];
        let fake = Arc::new(FakeHost(Mutex::new(vec![])));
        let h: Arc<dyn Host> = fake.clone();
        compile(&steps, Some(&h), false, false).unwrap();
        let forms: Vec<_> = fake.0.lock().unwrap().iter().map(|g| g.1).collect();
        assert_eq!(forms, vec![OutputForm::Keep, OutputForm::Reply]);
    }
}
