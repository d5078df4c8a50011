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
use super::{fused, plan, runtime};
use crate::config::{self, Key};
use crate::engine::compile::{compile, Stage};
use crate::engine::execution::Execution;
use crate::engine::plan::{Mode, StepKind};
use crate::engine::reader::Reader;
use crate::engine::registration::{Registration, Trigger};
use crate::readers::keys::{KeysReader, RecordShape};
use crate::readers::{shards::ShardsIdReader, stream::StreamReader};
use crate::state::globals;
use crate::triggers::command::CommandTrigger;
use crate::triggers::hooks::HookTrigger;
use crate::triggers::keys::KeysTrigger;
use crate::triggers::stream::{OnFailed, StreamTrigger};
use crate::triggers::timer::TimeTrigger;

/// A run() the script asked for, started once the script has succeeded.
pub struct ScriptRun {
    pub exec: Arc<Execution>,
    pub reader: Box<dyn Reader>,
    pub stages: Vec<Stage>,
    pub mode: Mode,
}

struct ScriptState {
    session: SessionRef,
    run: Option<ScriptRun>,
    /// Registrations made so far, in order (their index in the script is their position).
    registered: Vec<Option<String>>,
    /// Re-creating a persisted or replicated session: which register() calls (by index)
    /// come back, with their ids. run() and top-level execute() do nothing then.
    restoring: Option<HashMap<usize, String>>,
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
) -> Result<ScriptOutcome, String> {
    let code = CString::new(code).map_err(|_| "the script contains a NUL byte".to_string())?;
    Python::attach(|py| {
        SCRIPT.with(|s| {
            *s.borrow_mut() = Some(ScriptState {
                session,
                run: None,
                registered: Vec::new(),
                restoring,
            })
        });
        let result =
            runtime::new_globals(py).and_then(|globals| py.run(&code, Some(&globals), None));
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
                Err(describe_error(py, &e))
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

fn build_reader(
    py: Python<'_>,
    name: &str,
    args: &Bound<'_, PyDict>,
    first_step_native: bool,
) -> PyResult<Box<dyn Reader>> {
    Ok(match name {
        "KeysReader" => {
            let shape = if get(args, "readValue", true)? {
                RecordShape::WithValue
            } else {
                RecordShape::KeyAndEvent
            };
            Box::new(KeysReader::new(
                get(args, "pattern", "*".to_string())?,
                get(args, "noScan", false)?,
                shape,
                None,
            ))
        }
        "KeysOnlyReader" => {
            let no_scan = get(args, "noScan", false)?;
            let count: usize = get(args, "count", 1000)?;
            match args.get_item("patternGenerator")?.filter(|g| !g.is_none()) {
                Some(g) if g.is_callable() => Box::new(KeysReader::with_generator(
                    pattern_source(g.unbind()),
                    no_scan,
                    Some(count),
                )),
                Some(_) => return Err(PyTypeError::new_err("patternGenerator must be callable")),
                None => Box::new(KeysReader::new(
                    get(args, "pattern", "*".to_string())?,
                    no_scan,
                    RecordShape::Name,
                    Some(count),
                )),
            }
        }
        "StreamReader" => Box::new(StreamReader::new(
            get(args, "key", "*".to_string())?,
            get(args, "fromId", "0-0".to_string())?,
        )),
        "ShardsIDReader" => Box::new(ShardsIdReader::new(globals().shard_id.clone())),
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
            "unknown mode '{text}' (sync, async or async_local)"
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
    let steps = plan::build(py, steps)?;
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
    let exec = globals().registry.create(None, reports);
    SCRIPT.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            exec.keep_alive(Box::new(state.session.clone()));
            state.run = Some(ScriptRun {
                exec,
                reader,
                stages,
                mode,
            });
        }
    });
    Ok(())
}

fn str_list(args: &Bound<'_, PyDict>, name: &str) -> PyResult<Option<Vec<String>>> {
    get(args, name, None::<Vec<String>>)
}

/// `_gears.register()`: binds the plan to events; returns the registration id.
pub fn on_register(
    py: Python<'_>,
    reader: &str,
    reader_args: &Bound<'_, PyDict>,
    steps: &Bound<'_, PyList>,
    options: &Bound<'_, PyDict>,
) -> PyResult<Option<String>> {
    let (session, index, restored_id) = SCRIPT
        .with(|s| {
            s.borrow().as_ref().map(|st| {
                let index = st.registered.len();
                let restored = st.restoring.as_ref().map(|ids| ids.get(&index).cloned());
                (st.session.clone(), index, restored)
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
    let trigger: Box<dyn Trigger> = match reader {
        "KeysReader" => Box::new(KeysTrigger {
            prefix: get(reader_args, "prefix", "*".to_string())?,
            event_types: str_list(reader_args, "eventTypes")?,
            key_types: str_list(reader_args, "keyTypes")?,
            read_value: get(reader_args, "readValue", true)?,
            commands: match str_list(reader_args, "commands")? {
                Some(commands) => {
                    for c in &commands {
                        crate::triggers::hooks::check_hookable(c).map_err(PyValueError::new_err)?;
                    }
                    Some(commands)
                }
                None => None,
            },
        }),
        "StreamReader" => {
            let policy: String = get(reader_args, "onFailedPolicy", "continue".to_string())?;
            let on_failed = OnFailed::parse(&policy).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "onFailedPolicy must be continue, abort or retry, got '{policy}'"
                ))
            })?;
            if mode == Mode::Sync && on_failed != OnFailed::Continue {
                return Err(PyValueError::new_err(
                    "sync mode allows only onFailedPolicy='continue'",
                ));
            }
            Box::new(StreamTrigger::new(
                get(reader_args, "prefix", "*".to_string())?,
                get(reader_args, "batch", 1u64)?,
                get(reader_args, "duration", 0u64)?,
                on_failed,
                get(reader_args, "onFailedRetryInterval", 1u64)?,
                get(reader_args, "trimStream", true)?,
            ))
        }
        "TimeReader" => {
            let interval: u64 = get(reader_args, "interval", 0)?;
            if interval == 0 {
                return Err(PyValueError::new_err(
                    "TimeReader needs interval (milliseconds, at least 1)",
                ));
            }
            Box::new(TimeTrigger::new(interval))
        }
        "CommandReader" if reader_args.contains("hook")? => {
            let command: String = get(reader_args, "hook", String::new())?;
            let first_key =
                crate::triggers::hooks::check_hookable(&command).map_err(PyValueError::new_err)?;
            let keyprefix: Option<String> = get(reader_args, "keyprefix", None)?;
            if keyprefix.is_some() && first_key == 0 {
                return Err(PyValueError::new_err(format!(
                    "keyprefix given but '{command}' has no key"
                )));
            }
            Box::new(HookTrigger {
                command: command.to_ascii_lowercase(),
                keyprefix,
                first_key,
            })
        }
        "CommandReader" => {
            let name: String = get(reader_args, "trigger", String::new())?;
            if name.is_empty() {
                return Err(PyValueError::new_err(
                    "CommandReader needs trigger=name (hooks are not available yet)",
                ));
            }
            // The session being upgraded or re-created may hold the name already.
            let taken = crate::triggers::command::find(&name)
                .is_some_and(|r| r.session.as_deref() != Some(session.id()));
            if taken {
                return Err(PyValueError::new_err("trigger already registered"));
            }
            Box::new(CommandTrigger { name })
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "register() of {other} is not available yet"
            )))
        }
    };
    let steps = plan::build(py, steps)?;
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
    let desc: Option<String> = get(options, "desc", None)?;
    let registration = Arc::new(Registration {
        id: id.clone(),
        desc,
        mode,
        trigger,
        steps,
        host: Some(host),
        plan_text,
        session: Some(session.id().to_string()),
        session_index: index,
        stats: Default::default(),
        paused: Default::default(),
        keep_alive: std::sync::Mutex::new(vec![Box::new(session)]),
    });
    globals().registrations.add(registration.clone());
    crate::triggers::timer::start(&registration);
    crate::triggers::stream::start(&registration);
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
) -> Result<(), String> {
    for r in globals().registrations.list() {
        if r.session.as_deref() == Some(sid) {
            globals().registrations.remove(&r.id);
        }
    }
    let (session, _) = super::session::open(Some(sid.to_string()), desc, code, true)?;
    execute(code, session, Some(ids.into_iter().collect())).map(|_| ())
}
