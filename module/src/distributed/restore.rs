//! RG.RESTORECODE and RG.FLUSHCODE as changes: a dump's sessions and guests made here
//! all or none, and every registration removed.
//!
//! A restore is staged as its items are (each session's script re-run, each guest
//! compiled: [`changes::stage`]), after a check of what it needs here (Python, its
//! owners, and in APPEND mode that nothing it names exists). Committing cannot fail:
//! FLUSH empties the server first, REPLACE unregisters what holds one of the dump's
//! registration ids for another owner, then every item is committed. Replicas and the
//! AOF get it as the commands that replay its parts: RG.FLUSHCODE, RG.UNREGISTER,
//! RG.INNERREGISTER, RG.INNERWASM and RG.PAUSEREGISTRATIONS.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use redis_module::Context;

use super::changes::{self, Change, Ready};
use super::code::Code;
use crate::globals::globals;
use crate::redis::{acl, lock, log};
use crate::wasm::guests;

/// What a restore does with what exists here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// Adds; refused whole if any session, guest or registration id exists.
    Append,
    /// Replaces the sessions and guests of the same name, and the registrations of the
    /// same id.
    Replace,
    /// Removes every registration and guest first.
    Flush,
}

impl RestoreMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreMode::Append => "APPEND",
            RestoreMode::Replace => "REPLACE",
            RestoreMode::Flush => "FLUSH",
        }
    }

    pub fn parse(s: &str) -> Result<RestoreMode> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "APPEND" => RestoreMode::Append,
            "REPLACE" => RestoreMode::Replace,
            "FLUSH" => RestoreMode::Flush,
            other => bail!("Unknown arguments were given: {other}"),
        })
    }
}

/// A restore staged here: every item staged, ready to commit. Dropped, nothing changed.
pub struct StagedRestore {
    mode: RestoreMode,
    code: Code,
    items: Vec<Ready>,
}

/// Whether `code` can be restored here in `mode` (main thread, or the Redis lock held).
pub fn check(mode: RestoreMode, code: &Code) -> Result<(), String> {
    let sessions = code
        .items
        .iter()
        .filter(|i| matches!(i, Change::Session { .. }));
    if sessions.count() > 0 && !globals().python {
        return Err(
            "the payload holds Python sessions and Python is disabled on this server (PythonEnabled 0)"
                .into(),
        );
    }
    let owners: BTreeSet<&str> = code.items.iter().filter_map(owner).collect();
    if let Some(user) = owners.into_iter().find(|u| !acl::user_exists(u)) {
        return Err(format!(
            "the payload holds code owned by the ACL user '{user}', who does not exist on this server"
        ));
    }
    if mode == RestoreMode::Append {
        let clashes = clashes(code);
        if !clashes.is_empty() {
            return Err(format!(
                "nothing was restored: {} already exist here (use REPLACE or FLUSH)",
                clashes.join(", ")
            ));
        }
    }
    Ok(())
}

fn owner(item: &Change) -> Option<&str> {
    match item {
        Change::Session { user, .. } | Change::Guest { user, .. } => Some(user),
        _ => None,
    }
}

/// The sessions, guests and registrations of `code` that exist here.
fn clashes(code: &Code) -> Vec<String> {
    let mut out = Vec::new();
    for item in &code.items {
        match item {
            Change::Session { sid, .. } if crate::python::session::exists(sid) => {
                out.push(format!("session '{sid}'"))
            }
            Change::Guest { name, .. } if guests::get(name).is_some() => {
                out.push(format!("guest '{name}'"))
            }
            _ => {}
        }
    }
    for id in code.registration_ids() {
        if globals().registrations.get(id).is_some() {
            out.push(format!("registration {id}"));
        }
    }
    out
}

/// Stages a restore (a thread that may take the Redis lock: the pool or the helper).
pub fn stage(mode: RestoreMode, code: Code) -> Result<StagedRestore, String> {
    let _ctx = lock::context();
    let checked = check(mode, &code);
    lock::release_slice();
    checked?;
    let mut items = Vec::with_capacity(code.items.len());
    for item in &code.items {
        // On an error the items staged so far drop: their staging is undone.
        items.push(changes::stage(item.clone())?);
    }
    Ok(StagedRestore { mode, code, items })
}

impl StagedRestore {
    /// Makes the restore live and replicates its parts (main thread, or the lock held).
    pub fn commit(self, ctx: &Context, version: u64) {
        let (mode, code) = (self.mode, self.code);
        if mode == RestoreMode::Flush {
            flush_here();
            ctx.replicate("RG.FLUSHCODE", &[] as &[&[u8]]);
        }
        if mode == RestoreMode::Replace {
            for id in held_by_others(&code) {
                if changes::unregister_here(&id) {
                    ctx.replicate("RG.UNREGISTER", &[id.as_bytes()]);
                }
            }
        }
        for item in self.items {
            item.commit(ctx, version);
        }
        if !code.paused.is_empty() {
            let pause = Change::Pause {
                ids: code.paused.clone(),
                paused: true,
            };
            if let Ok(ready) = changes::check_here(pause) {
                ready.commit(ctx, version);
            }
        }
        let ids = code.registration_ids().len();
        log::notice("code restored", || {
            format!(
                "code restored ({}): {} sessions and guests, {ids} registrations",
                mode.as_str(),
                code.items.len()
            )
        });
    }
}

/// The dump's registration ids that a registration of another owner holds here.
fn held_by_others(code: &Code) -> Vec<String> {
    let mut out = Vec::new();
    for item in &code.items {
        // The item's ids, and who owns them: (session, guest) as a registration says.
        let (ids, owner): (Vec<&String>, _) = match item {
            Change::Session { sid, ids, .. } => (
                ids.iter().map(|(_, id)| id).collect(),
                (Some(sid.as_str()), None),
            ),
            Change::Guest { name, ids, .. } => (ids.iter().collect(), (None, Some(name.as_str()))),
            _ => continue,
        };
        for id in ids {
            let held = globals().registrations.get(id);
            if held.is_some_and(|r| (r.session.as_deref(), r.guest.as_deref()) != owner) {
                out.push(id.clone());
            }
        }
    }
    out
}

/// Removes every registration (their runs stop) and every guest (main thread, or the
/// lock held). Python sessions end with their last registration.
pub fn flush_here() {
    let registrations = globals().registrations.list();
    for r in &registrations {
        changes::unregister_here(&r.id);
    }
    let guests = guests::list().len();
    guests::clear();
    log::notice("code flushed", || {
        format!(
            "code flushed: {} registrations and {guests} guests removed",
            registrations.len()
        )
    });
}
