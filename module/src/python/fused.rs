//! A fused run of consecutive Python steps: one GIL entry per batch.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::convert::{describe_error, host, to_py, to_reply, to_value};
use super::errors::ExecutionAborted;
use super::shim;
use super::watchdog;
use crate::engine::operator::{Events, Operator, RunCtx, Stop};
use crate::engine::plan::{Combiner, OutputForm};
use crate::engine::spares::{SpareKey, Spares};
use crate::engine::value::Value;

/// How a fused run is set up.
pub struct Options {
    pub output: OutputForm,
    /// The local half of a two-phase aggregate run as the run's last sink.
    pub combiner: Option<Combiner>,
    pub profile: bool,
    pub sync: bool,
    pub traceback: bool,
    /// convertToStr: final strings are plain bulk replies, never status or error replies.
    pub plain_strings: bool,
}

/// The spare runs of a Python plan: a run is kept when it ended with nothing left in it
/// (no stateful step holding records, nothing parked) and it has no combiner and no
/// profiling; its push already emptied what it collected, so it is as new.
pub type PySpares = Spares<Py<PyAny>>;

/// One FusedRun of the shim over `steps` (a list of `(op, args)`, `count` of them),
/// made by `make_steps`, or a spare one of the same steps when `spare` has it.
pub fn operator<'py>(
    py: Python<'py>,
    make_steps: impl FnOnce() -> anyhow::Result<Bound<'py, PyList>>,
    count: usize,
    o: Options,
    spare: Option<(Arc<PySpares>, SpareKey)>,
) -> anyhow::Result<Box<dyn Operator>> {
    let reusable = o.combiner.is_none() && !o.profile;
    let spare = spare.filter(|_| reusable);
    let kept = spare.as_ref().and_then(|(spares, key)| spares.take(key));
    let run = match kept {
        Some(run) => run,
        None => {
            let options = PyDict::new(py);
            options.set_item("profile", o.profile)?;
            options.set_item("traceback", o.traceback)?;
            options.set_item("sync", o.sync)?;
            if let Some(c) = o.combiner {
                options.set_item("combine", c.as_str())?;
            }
            let steps = make_steps()?;
            shim::fused_run_class(py)?.call1((steps, options))?.unbind()
        }
    };
    Ok(Box::new(FusedOp {
        run: Some(run),
        output: o.output,
        steps: count,
        needs_finish: false,
        waiting: false,
        clean: false,
        spare,
        reusable,
        sync: o.sync,
        profile: o.profile,
        plain_strings: o.plain_strings,
    }))
}

struct FusedOp {
    /// Always Some until dropped (taken then to be kept as a spare).
    run: Option<Py<PyAny>>,
    /// The last push or finish ended with nothing left in the run (`Spares`).
    clean: bool,
    spare: Option<(Arc<PySpares>, SpareKey)>,
    /// A clean run may go on with another event's records (no combiner, no profiling).
    reusable: bool,
    output: OutputForm,
    steps: usize,
    needs_finish: bool,
    /// Records wait on futures or coroutines (parked by the last push).
    waiting: bool,
    sync: bool,
    profile: bool,
    plain_strings: bool,
}

fn stop_of(py: Python<'_>, err: PyErr) -> Stop {
    if err.is_instance_of::<ExecutionAborted>(py) {
        match watchdog::fired_here().and_then(|f| f.error()) {
            Some(over_budget) => Stop::Failed(over_budget),
            None => Stop::Aborted,
        }
    } else {
        Stop::Failed(describe_error(py, &err))
    }
}

impl FusedOp {
    fn push_in(
        &mut self,
        py: Python<'_>,
        cx: &mut RunCtx,
        batch: Vec<Value>,
    ) -> Result<Vec<Value>, Stop> {
        self.clean = false;
        let _watch = watchdog::enter(py);
        cx.count_entry("python");
        let list = PyList::empty(py);
        for v in &batch {
            list.append(to_py(py, v).map_err(|e| stop_of(py, e))?)
                .map_err(|e| stop_of(py, e))?;
        }
        drop(batch);
        let reply = self
            .run(py)?
            .call_method1("push", (list,))
            .map_err(|e| stop_of(py, e))?;
        let (out, needs_finish, waiting) = self.outputs(cx, &reply).map_err(|e| stop_of(py, e))?;
        self.needs_finish = needs_finish;
        self.waiting = waiting;
        self.clean = !needs_finish && !waiting;
        Ok(out)
    }

    fn finish_in(&mut self, py: Python<'_>, cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        self.clean = false;
        let _watch = watchdog::enter(py);
        cx.count_entry("python");
        let reply = self
            .run(py)?
            .call_method0("finish")
            .map_err(|e| stop_of(py, e))?;
        let (out, _, _) = self.outputs(cx, &reply).map_err(|e| stop_of(py, e))?;
        self.needs_finish = false;
        self.waiting = false;
        Ok(out)
    }

    fn run<'py>(&self, py: Python<'py>) -> Result<&Bound<'py, PyAny>, Stop> {
        match &self.run {
            Some(run) => Ok(run.bind(py)),
            None => Err(Stop::Failed("the fused run is gone".into())),
        }
    }

    /// The outputs of a push or finish reply `(outputs, errors[, needs_finish[,
    /// waiting]])`; returns the outputs and the two flags.
    fn outputs(
        &self,
        cx: &mut RunCtx,
        reply: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<Value>, bool, bool)> {
        let tuple = reply.cast::<PyTuple>()?;
        let outputs = tuple.get_item(0)?;
        let errors = tuple.get_item(1)?;
        let needs_finish = tuple.len() > 2 && tuple.get_item(2)?.is_truthy()?;
        let waiting = tuple.len() > 3 && tuple.get_item(3)?.is_truthy()?;
        for e in errors.try_iter()? {
            cx.errors.push(e?.str()?.to_string());
        }
        let mut out = Vec::new();
        for obj in outputs.try_iter()? {
            let obj = obj?;
            out.push(match self.output {
                OutputForm::Keep => host(obj),
                OutputForm::Values => to_value(&obj),
                OutputForm::Reply => to_reply(&obj, !self.plain_strings),
            });
        }
        Ok((out, needs_finish, waiting))
    }
}

impl Operator for FusedOp {
    fn push(&mut self, cx: &mut RunCtx, batch: Vec<Value>) -> Result<Vec<Value>, Stop> {
        Python::attach(|py| self.push_in(py, cx, batch))
    }

    fn finish(&mut self, cx: &mut RunCtx) -> Result<Vec<Value>, Stop> {
        if !self.needs_finish {
            return Ok(Vec::new());
        }
        Python::attach(|py| self.finish_in(py, cx))
    }

    /// One GIL entry for the events: a clean run (nothing held, nothing parked) goes on
    /// with the next event's records, as a spare run would.
    fn push_each(&mut self, events: &mut dyn Events) -> usize {
        super::thread_state::keep();
        Python::attach(|py| {
            for i in 0..events.len() {
                let Some((input, cx)) = events.start(i) else {
                    continue;
                };
                let mut out = self.push_in(py, cx, input);
                if let (Ok(records), true) = (&mut out, self.needs_finish) {
                    match self.finish_in(py, cx) {
                        Ok(more) => records.extend(more),
                        Err(stop) => out = Err(stop),
                    }
                }
                let go_on = out.is_ok() && self.clean && self.reusable;
                events.end(i, out);
                if !go_on {
                    return i + 1;
                }
            }
            events.len()
        })
    }

    /// A sync run's records wait on futures, or records wait on the main thread (a
    /// sync run there only parks when it may move: `launch::Movable`).
    fn parked(&self) -> bool {
        self.waiting && (self.sync || crate::redis::lock::on_main_thread())
    }

    fn step_nanos(&self) -> Vec<u64> {
        if !self.profile {
            return vec![0; self.steps];
        }
        Python::attach(|py| {
            self.run(py)
                .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("gone"))
                .and_then(|run| run.call_method0("timings"))
                .and_then(|t| t.extract::<Vec<u64>>())
                .unwrap_or_else(|_| vec![0; self.steps])
        })
    }
}

impl Drop for FusedOp {
    fn drop(&mut self) {
        if let (true, Some((spares, key)), Some(run)) =
            (self.clean, self.spare.take(), self.run.take())
        {
            // One more than kept is dropped (pyo3 defers its decref without the GIL).
            drop(spares.give(key, run));
        }
    }
}
