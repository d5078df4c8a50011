//! Running a compiled execution: reader batches through the stages, to the results.

use std::time::Instant;

use super::compile::Stage;
use super::execution::{Execution, Status};
use super::operator::{RunCtx, Stop};
use super::reader::{Reader, VecReader};
use super::value::Value;

/// What the runner needs from its surroundings.
pub struct RunEnv<'a> {
    pub batch_size: usize,
    pub profile: bool,
    /// Called after every batch (the Redis shell gives back its lock slice there).
    pub end_batch: &'a dyn Fn(),
    /// Called once the outcome is recorded, before waiting clients are answered (the
    /// registry is trimmed there, so clients never see more than MaxExecutions).
    pub after_record: &'a dyn Fn(&Execution),
}

/// Pushes one batch through `ops[from..]`.
fn push_through(
    stage: &mut Stage,
    from: usize,
    cx: &mut RunCtx,
    mut batch: Vec<Value>,
) -> Result<Vec<Value>, Stop> {
    for op in stage.ops[from..].iter_mut() {
        if batch.is_empty() {
            break;
        }
        batch = op.push(cx, batch)?;
    }
    Ok(batch)
}

/// Runs one stage over everything `reader` gives; returns the stage's output.
fn run_stage(
    exec: &Execution,
    stage: &mut Stage,
    reader: &mut dyn Reader,
    cx: &mut RunCtx,
    env: &RunEnv,
    read_nanos: &mut u64,
) -> Result<Vec<Value>, Stop> {
    let mut out = Vec::new();
    loop {
        if exec.abort_requested() {
            return Err(Stop::Aborted);
        }
        let t = Instant::now();
        let batch = reader.next_batch(env.batch_size);
        *read_nanos += t.elapsed().as_nanos() as u64;
        let batch = match batch {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                (env.end_batch)();
                if exec.abort_requested() {
                    return Err(Stop::Aborted);
                }
                cx.errors.push(format!("{e:#}"));
                break;
            }
        };
        let result = push_through(stage, 0, cx, batch);
        (env.end_batch)();
        out.extend(result?);
    }
    for i in 0..stage.ops.len() {
        let flushed = stage.ops[i].finish(cx);
        let flushed = flushed.and_then(|f| push_through(stage, i + 1, cx, f));
        (env.end_batch)();
        out.extend(flushed?);
    }
    Ok(out)
}

/// Runs the execution to its end and records the outcome in it.
pub fn run(exec: &Execution, reader: Box<dyn Reader>, mut stages: Vec<Stage>, env: &RunEnv) {
    if !exec.start() {
        return;
    }
    let started = Instant::now();
    let mut cx = RunCtx::new(env.profile);
    let mut read_nanos = 0u64;
    let mut reader = reader;
    let mut outcome: Result<Vec<Value>, Stop> = Ok(Vec::new());
    for (i, stage) in stages.iter_mut().enumerate() {
        let mut input: Box<dyn Reader> = match (i, outcome) {
            (0, _) => std::mem::replace(&mut reader, Box::new(VecReader::new(Vec::new()))),
            (_, Ok(records)) => Box::new(VecReader::new(records)),
            (_, Err(stop)) => {
                outcome = Err(stop);
                break;
            }
        };
        let mut stage_read = 0u64;
        outcome = run_stage(exec, stage, input.as_mut(), &mut cx, env, &mut stage_read);
        if i == 0 {
            read_nanos = stage_read;
        }
    }
    let mut step_nanos = vec![
        0u64;
        stages
            .iter()
            .map(|s| s.op_steps.iter().flatten().count())
            .sum()
    ];
    for stage in &stages {
        for (op, indices) in stage.ops.iter().zip(&stage.op_steps) {
            for (nanos, &i) in op.step_nanos().into_iter().zip(indices) {
                if let Some(slot) = step_nanos.get_mut(i) {
                    *slot = nanos;
                }
            }
        }
    }
    // Operators may hold host objects: drop them before the outcome releases the host's
    // resources (a session), and before waiters see the results.
    drop(stages);
    exec.set_entries(cx.entries.clone());
    let total_ms = started.elapsed().as_millis() as u64;
    let read_ms = read_nanos / 1_000_000;
    let (results, mut errors, status) = match outcome {
        Ok(results) => (replies(results), cx.errors, Status::Done),
        Err(Stop::Aborted) => (Vec::new(), cx.errors, Status::Aborted),
        Err(Stop::Failed(msg)) => {
            let mut errors = cx.errors;
            errors.push(msg);
            (Vec::new(), errors, Status::Done)
        }
    };
    if status == Status::Aborted {
        errors.push("Execution was aborted".into());
    }
    if exec.record(results, errors, status, total_ms, read_ms, step_nanos) {
        (env.after_record)(exec);
        exec.answer_waiters();
    }
}

/// Host objects left in the results become replies by their host's rules.
fn replies(results: Vec<Value>) -> Vec<Value> {
    if !results.iter().any(|v| matches!(v, Value::Host(_))) {
        return results;
    }
    results
        .into_iter()
        .map(|v| match v {
            Value::Host(h) => h.to_reply(),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::compile::compile;
    use crate::engine::execution::RunAs;
    use crate::engine::plan::{Exchange, NativeStep, Step, StepKind};

    fn step(kind: StepKind) -> Step {
        Step {
            kind,
            type_name: String::new(),
            name: String::new(),
            arg: String::new(),
        }
    }

    #[test]
    fn count_over_batches_and_stages() {
        let steps = vec![
            step(StepKind::Native(NativeStep::Limit {
                offset: 1,
                length: 1000,
            })),
            step(StepKind::Native(NativeStep::LocalCount)),
            step(StepKind::Exchange(Exchange::Collect)),
            step(StepKind::Native(NativeStep::SumCounts)),
        ];
        let stages = compile(&steps, None, true, false).unwrap();
        let exec = Execution::new("x-1".into(), 1, None, vec![], RunAs::new("default", 0));
        let records = (0..1500).map(Value::Int).collect();
        let env = RunEnv {
            batch_size: 64,
            profile: true,
            end_batch: &|| {},
            after_record: &|_| {},
        };
        run(&exec, Box::new(VecReader::new(records)), stages, &env);
        let st = exec.state();
        assert_eq!(st.status, Status::Done);
        assert_eq!(st.results, vec![Value::Int(1000)]);
    }

    #[test]
    fn aborted_before_start_never_runs() {
        let exec = Execution::new("x-1".into(), 1, None, vec![], RunAs::new("default", 0));
        assert_eq!(
            exec.request_abort(),
            crate::engine::execution::Abort::FinishedHere
        );
        let env = RunEnv {
            batch_size: 64,
            profile: false,
            end_batch: &|| {},
            after_record: &|_| {},
        };
        run(
            &exec,
            Box::new(VecReader::new(vec![Value::Int(1)])),
            vec![],
            &env,
        );
        assert_eq!(exec.status(), Status::Aborted);
    }
}
