//! The guests of this server by name, and what uploading, replacing and deleting one does
//! to the registrations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::described;
use super::program::Program;
use crate::engine::execution::RunAs;
use crate::engine::plan::Mode;
use crate::engine::registration::{Owner, Registration, Trigger};
use crate::globals::globals;
use crate::plans::readers::reader_of;
use crate::plans::{triggers, validate};

static GUESTS: Mutex<BTreeMap<String, Arc<Program>>> = Mutex::new(BTreeMap::new());

fn guests() -> MutexGuard<'static, BTreeMap<String, Arc<Program>>> {
    GUESTS.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn get(name: &str) -> Option<Arc<Program>> {
    guests().get(name).cloned()
}

pub fn list() -> Vec<Arc<Program>> {
    guests().values().cloned().collect()
}

/// The registrations a guest owns, by their index in its description.
pub fn registrations_of(name: &str) -> Vec<Arc<Registration>> {
    let mut regs: Vec<_> = globals()
        .registrations
        .list()
        .into_iter()
        .filter(|r| r.guest.as_deref() == Some(name))
        .collect();
    regs.sort_by_key(|r| r.session_index);
    regs
}

/// The registration ids of a guest by index ("" where one was unregistered since).
pub fn ids_of(program: &Program) -> Vec<String> {
    let regs = registrations_of(&program.name);
    (0..program.description.registrations.len())
        .map(|i| {
            regs.iter()
                .find(|r| r.session_index == i)
                .map(|r| r.id.clone())
                .unwrap_or_default()
        })
        .collect()
}

fn same_trigger(a: &dyn Trigger, b: &dyn Trigger) -> bool {
    a.reader() == b.reader() && format!("{:?}", a.args()) == format!("{:?}", b.args())
}

/// Checks every job of a guest before it is accepted.
fn check_jobs(program: &Arc<Program>) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for job in &program.description.jobs {
        if job.name.is_empty() || !names.insert(job.name.as_str()) {
            return Err(format!(
                "job names must be unique and not empty ('{}')",
                job.name
            ));
        }
        let at = |e: String| format!("job '{}': {e}", job.name);
        let plan = described::job_plan(program, job, Vec::new()).map_err(at)?;
        reader_of(&plan).map_err(|e| at(format!("{e:#}")))?;
        plan.compile(false, plan.mode == Mode::Sync)
            .map_err(|e| at(format!("{e:#}")))?;
    }
    Ok(())
}

/// Uploads (or re-creates, with `restored` ids) a guest: `load`, `stage`, `install`.
pub fn install(
    name: &str,
    desc: Option<String>,
    bytes: Vec<u8>,
    replace: bool,
    restored: Option<Vec<String>>,
    owner: RunAs,
) -> Result<Vec<String>, String> {
    let restoring = restored.is_some();
    let program = load(name, desc, bytes, replace || restoring, owner)?;
    Ok(stage(program, replace || restoring, restored)?.install())
}

/// A guest compiled and its registrations made, not live yet: `install` swaps them in.
/// Dropped without `install`, nothing changes.
pub struct StagedGuest {
    program: Arc<Program>,
    made: Vec<Option<Arc<Registration>>>,
}

impl StagedGuest {
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The registration ids by index ("" where one stays unregistered).
    pub fn ids(&self) -> Vec<String> {
        self.made
            .iter()
            .map(|r| r.as_ref().map(|r| r.id.clone()).unwrap_or_default())
            .collect()
    }

    /// Swaps the guest's registrations in one step (on the main thread or with the Redis
    /// lock held), so no event runs on neither the old nor the new code. Returns the ids.
    pub fn install(self) -> Vec<String> {
        let ids = self.ids();
        let name = self.program.name.as_str();
        let replaced = guests().contains_key(name);
        let hash = self.program.hash.clone();
        let registrations = self.made.iter().flatten().count();
        crate::redis::log::notice(&format!("guest {name}"), || {
            format!(
                "guest {name} {} (sha256 {hash}, contract {}, {registrations} registrations)",
                if replaced { "replaced" } else { "installed" },
                self.program.version,
            )
        });
        for r in registrations_of(name) {
            globals().registrations.remove(&r.id);
        }
        for r in self.made.into_iter().flatten() {
            globals().registrations.add(r.clone());
            triggers::start(&r);
        }
        guests().insert(name.to_string(), self.program);
        ids
    }
}

/// What can be checked of an upload before compiling it: its name and description, and
/// (without `replace`) that no guest has the name yet.
pub fn precheck(name: &str, desc: Option<&str>, replace: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("a guest needs a name".into());
    }
    validate::name("guest name", name, true)?;
    if let Some(d) = desc {
        validate::name("DESCRIPTION", d, false)?;
    }
    if !replace && get(name).is_some() {
        return Err(format!("guest '{name}' already exists (use REPLACE)"));
    }
    Ok(())
}

/// Compiles and describes a guest (the slow part: it touches nothing of Redis, so it may
/// run on any thread). Nothing is registered yet.
pub fn load(
    name: &str,
    desc: Option<String>,
    bytes: Vec<u8>,
    replace: bool,
    owner: RunAs,
) -> Result<Program, String> {
    precheck(name, desc.as_deref(), replace)?;
    Program::load(name, desc, bytes, owner).map_err(|e| format!("{e:#}"))
}

/// Checks every plan of a loaded guest and makes its registrations (with the `restored`
/// ids, if given), without installing anything (on the main thread or with the Redis
/// lock held).
pub fn stage(
    program: Program,
    replace: bool,
    restored: Option<Vec<String>>,
) -> Result<StagedGuest, String> {
    let program = Arc::new(program);
    let name = program.name.as_str();
    // Checked again: another upload of the name may have landed while this one compiled.
    precheck(name, program.desc.as_deref(), replace)?;
    check_jobs(&program)?;
    let old = registrations_of(name);
    let own = |r: &Registration| r.guest.as_deref() == Some(name);
    let mut made: Vec<Option<Arc<Registration>>> = Vec::new();
    for (index, described) in program.description.registrations.iter().enumerate() {
        let at = |e: String| format!("registration {index}: {e}");
        if let Some(d) = &described.desc {
            validate::name("desc", d, false).map_err(at)?;
        }
        let plan = described::plan(&program, described).map_err(at)?;
        let trigger: Arc<dyn Trigger> = Arc::from(
            triggers::trigger(&plan.reader.name, &plan.reader, plan.mode, &own).map_err(at)?,
        );
        plan.compile(false, plan.mode == Mode::Sync)
            .map_err(|e| at(format!("{e:#}")))?;
        let previous = old.iter().find(|r| r.session_index == index);
        let (id, trigger) = match &restored {
            Some(ids) => match ids.get(index).filter(|id| !id.is_empty()) {
                // The same registration, unchanged: its trigger goes on (a stream from
                // where it stopped).
                Some(id)
                    if previous.is_some_and(|p| {
                        p.id == *id && same_trigger(p.trigger.as_ref(), trigger.as_ref())
                    }) =>
                {
                    (id.clone(), previous.map_or(trigger, |p| p.trigger.clone()))
                }
                Some(id) => {
                    globals().registry.reserve(id);
                    (id.clone(), trigger)
                }
                // Unregistered before it was saved: it stays so.
                None => {
                    made.push(None);
                    continue;
                }
            },
            None => match previous {
                // REPLACE keeps an unchanged trigger (and its id): a stream goes on from
                // where the old code stopped, with the same consumer group.
                Some(p) if same_trigger(p.trigger.as_ref(), trigger.as_ref()) => {
                    (p.id.clone(), p.trigger.clone())
                }
                _ => (globals().registry.next_id(), trigger),
            },
        };
        made.push(Some(Arc::new(Registration::new(
            id,
            plan,
            trigger,
            program.owner.clone(),
            Owner::Guest(name.to_string()),
            index,
        ))));
    }
    Ok(StagedGuest { program, made })
}

/// Removes a guest and its registrations.
pub fn delete(name: &str) -> Result<(), String> {
    if guests().remove(name).is_none() {
        return Err(format!("guest '{name}' does not exist"));
    }
    crate::redis::log::notice(&format!("guest {name} deleted"), || {
        format!("guest {name} deleted")
    });
    for r in registrations_of(name) {
        globals().registrations.remove(&r.id);
    }
    Ok(())
}

/// Forgets every guest (before a snapshot is loaded).
pub fn clear() {
    guests().clear();
}
