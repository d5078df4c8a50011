//! Running an RG.PYEXECUTE script: a session's globals, and the `run()` it may call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use redis_module::logging::{log, RedisLogLevel};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert::describe_error;
use super::session::{Displaced, SessionRef};
use super::{builder, shim};
use crate::config::{self, Key};
use crate::engine::compile::Stage;
use crate::engine::execution::{Execution, RunAs};
use crate::engine::plan::{Mode, Plan};
use crate::engine::reader::Reader;
use crate::engine::registration::{Owner, Registration};
use crate::globals::globals;
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
    /// The CommandReader trigger names registered so far (one name, one registration).
    trigger_names: Vec<String>,
    /// The registrations themselves, with their onRegistered callbacks: installed only
    /// once the script succeeded (and, on a cluster, every master staged them too).
    staged: Vec<(Arc<Registration>, Option<Py<PyAny>>)>,
    /// Re-creating a persisted or replicated session: which register() calls (by index)
    /// come back, with their ids. run() and top-level execute() do nothing then.
    restoring: Option<HashMap<usize, String>>,
    /// Whom the script, its run and its registrations act for.
    run_as: RunAs,
}

/// What a successful script did.
pub struct ScriptOutcome {
    pub run: Option<ScriptRun>,
    /// Its registrations, made but not live yet.
    pub staged: StagedSession,
}

/// A session's registrations, made by its script but not live yet: `install` puts them
/// in place of the session's previous ones (and of REPLACE_WITH's). A guard: dropped
/// without `install`, nothing changes, and a session it displaced (UPGRADE, re-creation)
/// is put back.
pub struct StagedSession {
    pub sid: String,
    /// Ids of the registrations, by their index in the script.
    pub ids: Vec<(usize, String)>,
    /// A session whose registrations the new ones also replace (REPLACE_WITH).
    pub replace_with: Option<String>,
    registrations: Vec<(Arc<Registration>, Option<Py<PyAny>>)>,
    displaced: Option<Displaced>,
    /// Whom the session acts for (its onRegistered callbacks too).
    run_as: RunAs,
    /// Keeps the session listed until its registrations hold it.
    _session: SessionRef,
}

impl StagedSession {
    /// Makes the registrations live (main thread, or the Redis lock held). Returns the ids
    /// of the registrations of another session that were replaced (REPLACE_WITH).
    pub fn install(mut self) -> Vec<String> {
        self.displaced = None;
        let sid = self.sid.as_str();
        let mut others = Vec::new();
        for r in globals().registrations.list() {
            let Some(owner) = r.session.as_deref() else {
                continue;
            };
            if owner == sid || self.replace_with.as_deref() == Some(owner) {
                globals().registrations.remove(&r.id);
                if owner != sid {
                    others.push(r.id.clone());
                }
            }
        }
        let registrations = std::mem::take(&mut self.registrations);
        let mut callbacks = Vec::new();
        for (r, callback) in registrations {
            globals().registrations.add(r.clone());
            triggers::start(&r);
            callbacks.extend(callback);
        }
        if !callbacks.is_empty() {
            let _acting = crate::redis::door::act_as(&self.run_as);
            Python::attach(|py| {
                for callback in callbacks {
                    if let Err(e) = callback.call0(py) {
                        log(
                            RedisLogLevel::Warning,
                            format!(
                                "gears: onRegistered of session {sid} failed: {}",
                                describe_error(py, &e)
                            ),
                        );
                    }
                }
            });
        }
        others
    }
}

impl Drop for StagedSession {
    fn drop(&mut self) {
        if let Some(displaced) = self.displaced.take() {
            displaced.restore();
        }
    }
}

/// True while a session is being re-created on this thread (top-level execute() is
/// then skipped: loading must not repeat a script's side effects).
pub fn restoring() -> bool {
    SCRIPT.with(|s| s.borrow().as_ref().is_some_and(|st| st.restoring.is_some()))
}

thread_local! {
    static SCRIPT: RefCell<Option<ScriptState>> = const { RefCell::new(None) };
}

/// Runs `code` in a new globals dict of `session` (opened by the caller, displacing
/// `displaced`). Its registrations are staged, not live. A failing script leaves nothing
/// behind: its execution is forgotten, its registrations dropped, the displaced session
/// put back.
pub fn execute(
    code: &str,
    session: SessionRef,
    displaced: Option<Displaced>,
    restoring: Option<HashMap<usize, String>>,
    replace_with: Option<String>,
    run_as: &RunAs,
) -> Result<ScriptOutcome, String> {
    let mut staged = StagedSession {
        sid: session.id().to_string(),
        ids: Vec::new(),
        replace_with,
        registrations: Vec::new(),
        displaced,
        run_as: run_as.clone(),
        _session: session.clone(),
    };
    // A session re-created elsewhere (load, a replica, a peer master) may find its
    // requirements missing: they are installed first (RG.PYEXECUTE did so already).
    super::requirements::ensure(&super::requirements::of(code), false)?;
    let code = CString::new(code).map_err(|_| "the script contains a NUL byte".to_string())?;
    let _acting = crate::redis::door::act_as(run_as);
    Python::attach(|py| {
        SCRIPT.with(|s| {
            *s.borrow_mut() = Some(ScriptState {
                session,
                run: None,
                registered: Vec::new(),
                trigger_names: Vec::new(),
                staged: Vec::new(),
                restoring,
                run_as: run_as.clone(),
            })
        });
        let watch = super::watchdog::enter(py);
        let result = shim::new_globals(py).and_then(|globals| {
            let sid = SCRIPT.with(|s| {
                s.borrow().as_ref().map(|st| {
                    st.session.set_globals(globals.clone().unbind());
                    st.session.id().to_string()
                })
            });
            // Its functions name their session (RG.PYPROFILE finds it through them).
            globals.set_item("__gears_session__", sid)?;
            py.run(&code, Some(&globals), None)
        });
        let over_budget = watch.fired().and_then(|f| f.error());
        drop(watch);
        let state = SCRIPT.with(|s| s.borrow_mut().take());
        let (run, registered, made) = state
            .map(|s| (s.run, s.registered, s.staged))
            .unwrap_or_default();
        match result {
            Ok(()) => {
                staged.ids = registered
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, id)| id.map(|id| (i, id)))
                    .collect();
                staged.registrations = made;
                Ok(ScriptOutcome { run, staged })
            }
            Err(e) => {
                if let Some(run) = run {
                    globals().registry.forget(&run.exec);
                }
                Err(over_budget.unwrap_or_else(|| describe_error(py, &e)))
            }
        }
    })
}

/// `_gears.run()`: records the execution the script asks for.
pub fn on_run(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Option<String>> {
    if restoring() {
        return Ok(None);
    }
    let in_script = SCRIPT.with(|s| s.borrow().as_ref().map(|st| st.run.is_some()));
    match in_script {
        None => {
            // A step's run: its id, which the shim awaits.
            return super::nested::start(py, reader, reader_args, steps, options).map(Some);
        }
        Some(true) => {
            return Err(PyRuntimeError::new_err(
                "Can not run more then 1 executions in a single script",
            ))
        }
        Some(false) => {}
    }
    let (plan, reader) = super::nested::run_plan(py, reader, reader_args, steps, options)?;
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
    Ok(None)
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
    if reader == "CommandReader" {
        if let Some(name) = reader_args.get_item("trigger")? {
            let name: String = name.str()?.extract()?;
            let again = SCRIPT.with(|s| {
                s.borrow_mut().as_mut().is_some_and(|st| {
                    let again = st.trigger_names.contains(&name);
                    st.trigger_names.push(name);
                    again
                })
            });
            if again {
                return Err(PyValueError::new_err("trigger already registered"));
            }
        }
    }
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
    let callback = options
        .get_item("onRegistered")?
        .filter(|c| !c.is_none())
        .map(Bound::unbind);
    SCRIPT.with(|s| {
        s.borrow_mut().as_mut().map(|st| {
            st.registered.push(Some(id.clone()));
            st.staged.push((registration, callback));
        })
    });
    Ok(Some(id))
}

/// Re-creates a persisted or replicated session: its script runs again with run() and
/// top-level execute() skipped, and register() calls come back with their saved ids.
/// The registrations are staged: `install` replaces the session's previous ones (and
/// REPLACE_WITH's) with them.
pub fn stage(
    sid: &str,
    desc: Option<String>,
    code: &str,
    ids: Vec<(usize, String)>,
    replace_with: Option<String>,
    run_as: &RunAs,
) -> Result<StagedSession, String> {
    let (session, displaced) =
        super::session::open(Some(sid.to_string()), desc, code, run_as.clone(), true)?;
    let restoring = Some(ids.into_iter().collect());
    execute(code, session, displaced, restoring, replace_with, run_as).map(|o| o.staged)
}

/// Re-creates a persisted or replicated session at once (`stage`, then `install`).
pub fn restore(
    sid: &str,
    desc: Option<String>,
    code: &str,
    ids: Vec<(usize, String)>,
    run_as: &RunAs,
) -> Result<(), String> {
    stage(sid, desc, code, ids, None, run_as).map(|s| {
        s.install();
    })
}
