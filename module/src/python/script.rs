//! Running an RG.PYEXECUTE script: a session's globals, and the `run()` it may call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert::describe_error;
use super::host::PythonHost;
use super::session::SessionRef;
use super::{builder, shim};
use crate::config::{self, Key};
use crate::engine::compile::Stage;
use crate::engine::execution::{Execution, RunAs};
use crate::engine::plan::{Mode, Plan};
use crate::engine::reader::Reader;
use crate::engine::registration::{Owner, Registration};
use crate::globals::globals;
use crate::plans::readers::reader_of;
use crate::plans::triggers;
use crate::plans::validate;

/// A run() the script asked for, started once the script has succeeded.
pub struct ScriptRun {
    pub exec: Arc<Execution>,
    pub plan: Arc<Plan>,
    pub reader: Box<dyn Reader>,
    pub stages: Vec<Stage>,
}

struct ScriptState {
    session: SessionRef,
    run: Option<ScriptRun>,
    /// Registrations made so far, in order (their index in the script is their position).
    registered: Vec<Option<String>>,
    /// Re-creating a persisted or replicated session: which register() calls (by index)
    /// come back, with their ids. run() and top-level execute() do nothing then.
    restoring: Option<HashMap<usize, String>>,
    /// Whom the script, its run and its registrations act for.
    run_as: RunAs,
}

/// What a successful script did.
pub struct ScriptOutcome {
    pub run: Option<ScriptRun>,
    /// Ids of the registrations it made, by their index in the script.
    pub registrations: Vec<(usize, String)>,
}

/// True while a session is being re-created on this thread (top-level execute() is
/// then skipped: loading must not repeat a script's side effects).
pub fn restoring() -> bool {
    SCRIPT.with(|s| s.borrow().as_ref().is_some_and(|st| st.restoring.is_some()))
}

thread_local! {
    static SCRIPT: RefCell<Option<ScriptState>> = const { RefCell::new(None) };
}

/// Runs `code` in a new globals dict of `session`. A failing script leaves nothing
/// behind: its execution is forgotten and its registrations removed.
pub fn execute(
    code: &str,
    session: SessionRef,
    restoring: Option<HashMap<usize, String>>,
    run_as: &RunAs,
) -> Result<ScriptOutcome, String> {
    let code = CString::new(code).map_err(|_| "the script contains a NUL byte".to_string())?;
    let _acting = crate::redis::door::act_as(run_as);
    Python::attach(|py| {
        SCRIPT.with(|s| {
            *s.borrow_mut() = Some(ScriptState {
                session,
                run: None,
                registered: Vec::new(),
                restoring,
                run_as: run_as.clone(),
            })
        });
        let watch = super::watchdog::enter(py);
        let result = shim::new_globals(py).and_then(|globals| {
            SCRIPT.with(|s| {
                if let Some(st) = s.borrow().as_ref() {
                    st.session.set_globals(globals.clone().unbind());
                }
            });
            py.run(&code, Some(&globals), None)
        });
        let over_budget = watch.fired().and_then(|f| f.error());
        drop(watch);
        let state = SCRIPT.with(|s| s.borrow_mut().take());
        let (run, registered) = state.map(|s| (s.run, s.registered)).unwrap_or_default();
        let registrations: Vec<(usize, String)> = registered
            .into_iter()
            .enumerate()
            .filter_map(|(i, id)| id.map(|id| (i, id)))
            .collect();
        match result {
            Ok(()) => Ok(ScriptOutcome { run, registrations }),
            Err(e) => {
                if let Some(run) = run {
                    globals().registry.forget(&run.exec);
                }
                for (_, id) in registrations {
                    globals().registrations.remove(&id);
                }
                Err(over_budget.unwrap_or_else(|| describe_error(py, &e)))
            }
        }
    })
}

/// A failure of the plan's host as the Python exception it was, if it was one.
fn py_err(e: anyhow::Error) -> PyErr {
    match e.downcast::<PyErr>() {
        Ok(e) => e,
        Err(e) => PyValueError::new_err(format!("{e:#}")),
    }
}

/// `_gears.run()`: records the execution the script asks for.
pub fn on_run(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<()> {
    if restoring() {
        return Ok(());
    }
    let in_script = SCRIPT.with(|s| s.borrow().as_ref().map(|st| st.run.is_some()));
    match in_script {
        None => {
            return Err(PyRuntimeError::new_err(
                "run() can only be called by a script sent with RG.PYEXECUTE",
            ))
        }
        Some(true) => {
            return Err(PyRuntimeError::new_err(
                "Can not run more then 1 executions in a single script",
            ))
        }
        Some(false) => {}
    }
    // A run's plan is what other shards will receive as bytes (registrations travel as
    // their session's source instead).
    let traceback = config::get(Key::PythonAttemptTraceback) == 1;
    let plan = builder::plan(py, reader, reader_args, steps, options)?
        .travelled(&|_, reference| PythonHost::resolve(reference, traceback))
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    let reader = reader_of(&plan).map_err(py_err)?;
    let profile = config::get(Key::ProfileExecutions) == 1;
    let stages = plan
        .compile(profile, plan.mode == Mode::Sync)
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    SCRIPT.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            let exec = globals()
                .registry
                .create(None, plan.reports(), state.run_as.clone());
            exec.keep_alive(Box::new(state.session.clone()));
            state.run = Some(ScriptRun {
                exec,
                plan: Arc::new(plan),
                reader,
                stages,
            });
        }
    });
    Ok(())
}

/// `_gears.register()`: binds the plan to events; returns the registration id.
pub fn on_register(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Option<String>> {
    let (session, index, restored_id, run_as) = SCRIPT
        .with(|s| {
            s.borrow().as_ref().map(|st| {
                let index = st.registered.len();
                let restored = st.restoring.as_ref().map(|ids| ids.get(&index).cloned());
                (st.session.clone(), index, restored, st.run_as.clone())
            })
        })
        .ok_or_else(|| {
            PyRuntimeError::new_err(
                "register() can only be called by a script sent with RG.PYEXECUTE",
            )
        })?;
    let id = match restored_id {
        // Re-creating a session: a registration that was removed since stays removed.
        Some(None) => {
            SCRIPT.with(|s| s.borrow_mut().as_mut().map(|st| st.registered.push(None)));
            return Ok(None);
        }
        Some(Some(id)) => {
            globals().registry.reserve(&id);
            id
        }
        None => globals().registry.next_id(),
    };
    let plan = builder::plan(py, reader, reader_args, steps, options)?;
    if let Some(d) = &plan.desc {
        validate::name("desc", d, false).map_err(PyValueError::new_err)?;
    }
    let sid = session.id().to_string();
    let own = |r: &Registration| r.session.as_deref() == Some(sid.as_str());
    let trigger = triggers::trigger(&plan.reader.name, &plan.reader, plan.mode, &own)
        .map(Arc::from)
        .map_err(PyValueError::new_err)?;
    // Compiling once here reports a bad plan to the script instead of on every event.
    plan.compile(false, plan.mode == Mode::Sync)
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    let registration = Arc::new(Registration::new(
        id.clone(),
        plan,
        trigger,
        run_as,
        Owner::Session(sid.clone()),
        index,
    ));
    registration.keep_alive(Box::new(session));
    globals().registrations.add(registration.clone());
    triggers::start(&registration);
    SCRIPT.with(|s| {
        s.borrow_mut()
            .as_mut()
            .map(|st| st.registered.push(Some(id.clone())))
    });
    if let Some(callback) = options.get_item("onRegistered")?.filter(|c| !c.is_none()) {
        callback.call0()?;
    }
    Ok(Some(id))
}

/// Re-creates a persisted or replicated session: its script runs again with run() and
/// top-level execute() skipped, and register() calls come back with their saved ids.
/// Registrations the session had before are replaced.
pub fn restore(
    sid: &str,
    desc: Option<String>,
    code: &str,
    ids: Vec<(usize, String)>,
    run_as: &RunAs,
) -> Result<(), String> {
    for r in globals().registrations.list() {
        if r.session.as_deref() == Some(sid) {
            globals().registrations.remove(&r.id);
        }
    }
    let (session, _) =
        super::session::open(Some(sid.to_string()), desc, code, run_as.clone(), true)?;
    execute(code, session, Some(ids.into_iter().collect()), run_as).map(|_| ())
}
