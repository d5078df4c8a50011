//! Running an RG.PYEXECUTE script: a session's globals, and the `run()` it may call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert::describe_error;
use super::generator::{pattern_source, GeneratorReader};
use super::session::SessionRef;
use super::{builder, fused, shim};
use crate::config::{self, Key};
use crate::engine::compile::{compile, Stage};
use crate::engine::execution::{Execution, RunAs};
use crate::engine::plan::{Host, Mode, StepKind};
use crate::engine::reader::Reader;
use crate::engine::registration::Registration;
use crate::globals::globals;
use crate::plans::args::{wrong_type, Args};
use crate::plans::readers::native_reader;
use crate::plans::triggers;
use crate::plans::validate;
use crate::readers::keys::KeysReader;

/// A run() the script asked for, started once the script has succeeded.
pub struct ScriptRun {
    pub exec: Arc<Execution>,
    pub reader: Box<dyn Reader>,
    pub stages: Vec<Stage>,
    pub mode: Mode,
    pub host: Arc<dyn Host>,
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

fn get<'py, T: FromPyObjectOwned<'py>>(
    args: &Bound<'py, PyDict>,
    name: &str,
    default: T,
) -> PyResult<T> {
    match args.get_item(name)? {
        Some(v) if !v.is_none() => v.extract::<T>().map_err(|_| {
            PyTypeError::new_err(format!("reader argument '{name}' has the wrong type"))
        }),
        _ => Ok(default),
    }
}

/// A Python dict of reader arguments, read through the front-end-neutral trait.
struct PyArgs<'a, 'py>(&'a Bound<'py, PyDict>);

impl PyArgs<'_, '_> {
    fn value<T: for<'p> FromPyObjectOwned<'p>>(&self, name: &str) -> Result<Option<T>, String> {
        match self.0.get_item(name).map_err(|e| e.to_string())? {
            Some(v) if !v.is_none() => v.extract::<T>().map(Some).map_err(|_| wrong_type(name)),
            _ => Ok(None),
        }
    }
}

impl Args for PyArgs<'_, '_> {
    fn text(&self, name: &str) -> Result<Option<String>, String> {
        self.value(name)
    }
    fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        self.value(name)
    }
    fn number(&self, name: &str) -> Result<Option<u64>, String> {
        self.value(name)
    }
    fn texts(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        self.value(name)
    }
    fn has(&self, name: &str) -> bool {
        matches!(self.0.get_item(name), Ok(Some(v)) if !v.is_none())
    }
    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_none())
            .map(|(k, _)| k.extract::<String>().unwrap_or_else(|_| format!("{k}")))
            .collect()
    }
}

fn build_reader(
    py: Python<'_>,
    name: &str,
    args: &Bound<'_, PyDict>,
    first_step_native: bool,
) -> PyResult<Box<dyn Reader>> {
    if let Some(reader) = native_reader(name, &PyArgs(args)).map_err(PyValueError::new_err)? {
        return Ok(reader);
    }
    Ok(match name {
        "KeysOnlyReader" => {
            let no_scan = get(args, "noScan", false)?;
            let count: usize = get(args, "count", 1000)?;
            match args.get_item("patternGenerator")?.filter(|g| !g.is_none()) {
                Some(g) if g.is_callable() => Box::new(KeysReader::with_generator(
                    pattern_source(g.unbind()),
                    no_scan,
                    Some(count),
                )),
                _ => return Err(PyTypeError::new_err("patternGenerator must be callable")),
            }
        }
        "PythonReader" => {
            let generator = args
                .get_item("generator")?
                .filter(|g| g.is_callable())
                .ok_or_else(|| PyTypeError::new_err("PythonReader needs a generator function"))?;
            Box::new(GeneratorReader::new(py, &generator, first_step_native)?)
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "reader {other} does not support run()"
            )))
        }
    })
}

/// The `mode` option of run() and register() (default async).
fn mode_of(options: &Bound<'_, PyDict>) -> PyResult<Mode> {
    let text: String = get(options, "mode", "async".to_string())?;
    Mode::parse(&text).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown execution mode '{text}' (sync, async or async_local)"
        ))
    })
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
    let mode = mode_of(options)?;
    let steps = builder::build(py, steps)?;
    let first_step_native =
        matches!(steps.first().map(|s| &s.kind), Some(StepKind::Native(n)) if n.inspects_records());
    let reader = build_reader(py, reader, reader_args, first_step_native)?;
    let profile = config::get(Key::ProfileExecutions) == 1;
    let convert_to_str = get(options, "convertToStr", false)?;
    let host = fused::host_for_plans(
        config::get(Key::PythonAttemptTraceback) == 1,
        convert_to_str,
    );
    let stages = compile(&steps, Some(&host), profile, mode == Mode::Sync)
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    let reports = steps.iter().map(|s| s.report()).collect();
    SCRIPT.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            let exec = globals()
                .registry
                .create(None, reports, state.run_as.clone());
            exec.keep_alive(Box::new(state.session.clone()));
            state.run = Some(ScriptRun {
                exec,
                reader,
                stages,
                mode,
                host,
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
    let mode = mode_of(options)?;
    let desc: Option<String> = get(options, "desc", None)?;
    if let Some(d) = &desc {
        validate::name("desc", d, false).map_err(PyValueError::new_err)?;
    }
    let sid = session.id().to_string();
    let own = |r: &Registration| r.session.as_deref() == Some(sid.as_str());
    let trigger = triggers::trigger(reader, &PyArgs(reader_args), mode, &own)
        .map(Arc::from)
        .map_err(PyValueError::new_err)?;
    let steps = builder::build(py, steps)?;
    let convert_to_str = get(options, "convertToStr", false)?;
    let host = fused::host_for_plans(
        config::get(Key::PythonAttemptTraceback) == 1,
        convert_to_str,
    );
    // Compiling once here reports a bad plan to the script instead of on every event.
    compile(&steps, Some(&host), false, mode == Mode::Sync)
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))?;
    let plan_text = steps
        .iter()
        .map(|s| s.type_name.as_str())
        .collect::<Vec<_>>()
        .join(" -> ");
    let registration = Arc::new(Registration {
        id: id.clone(),
        desc,
        mode,
        trigger,
        steps,
        host: Some(host),
        run_as,
        plan_text,
        session: Some(session.id().to_string()),
        guest: None,
        session_index: index,
        stats: Default::default(),
        paused: Default::default(),
        keep_alive: std::sync::Mutex::new(vec![Box::new(session)]),
    });
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
