//! What a registration command changes, as a value that can be staged, committed and
//! replicated: the same change whether it is made by the command's own master, by another
//! master that received it ([`super::everywhere`]), or by a replica.
//!
//! A change travels as its source: a Python session's script with its registration ids,
//! a guest's bytes with its ids; never as pickles. Staging does everything that can fail
//! (running the script in re-creation mode, compiling the guest, checking ids) and leaves
//! the server as it was; committing cannot fail: it swaps the staged registrations in and
//! sends the change to this master's replicas and AOF, as the command RG.INNERREGISTER,
//! RG.INNERWASM, RG.WASMDELETE, RG.UNREGISTER, RG.PAUSEREGISTRATIONS or RG.FLUSHCODE that
//! replays it (a restore as those of its parts, [`super::restore`]).

use anyhow::{anyhow, bail, Result};
use redis_module::Context;

use super::code::Code;
use super::restore::{self, RestoreMode, StagedRestore};
use crate::cluster::messages::{opt_text, text};
use crate::engine::codec;
use crate::engine::execution::{Abort, RunAs};
use crate::engine::registration::Stats;
use crate::engine::value::Value;
use crate::globals::globals;
#[cfg(feature = "python")]
use crate::python::requirements;
#[cfg(feature = "python")]
use crate::python::script::{self, StagedSession};
use crate::redis::lock;
use crate::wasm::guests::{self, StagedGuest};

/// A change to the registrations of every master.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// RG.PYEXECUTE with register(): the session's source and its registrations' ids by
    /// their index in the script; `replace_with`'s registrations go too.
    Session {
        sid: String,
        desc: Option<String>,
        code: String,
        user: String,
        db: i32,
        ids: Vec<(usize, String)>,
        replace_with: Option<String>,
    },
    /// RG.WASMUPLOAD: the guest's bytes and its registrations' ids by index ("" for one
    /// unregistered since).
    Guest {
        name: String,
        desc: Option<String>,
        bytes: Vec<u8>,
        ids: Vec<String>,
        user: String,
        db: i32,
    },
    DeleteGuest {
        name: String,
    },
    Unregister {
        id: String,
    },
    Pause {
        ids: Vec<String>,
        paused: bool,
    },
    ClearStats,
    /// RG.RESTORECODE: a dump's sessions and guests, made in `mode`.
    Restore {
        mode: RestoreMode,
        code: Code,
    },
    /// RG.FLUSHCODE: every registration and guest removed.
    Flush,
}

/// A change staged here, ready to commit. A guard: dropped uncommitted, nothing changed.
pub struct Ready {
    pub change: Change,
    staged: Staged,
}

enum Staged {
    #[cfg(feature = "python")]
    Session(Box<StagedSession>),
    Guest(StagedGuest),
    Restore(StagedRestore),
    /// Checked; nothing to build ahead.
    Checked,
}

impl Ready {
    /// A Python session this master staged itself (RG.PYEXECUTE ran the script).
    #[cfg(feature = "python")]
    pub fn session(
        session: StagedSession,
        desc: Option<String>,
        code: &str,
        owner: &RunAs,
    ) -> Ready {
        Ready {
            change: Change::Session {
                sid: session.sid.clone(),
                desc,
                code: code.to_string(),
                user: owner.user.to_string(),
                db: owner.db,
                ids: session.ids.clone(),
                replace_with: session.replace_with.clone(),
            },
            staged: Staged::Session(Box::new(session)),
        }
    }

    /// A guest this master compiled and staged itself (RG.WASMUPLOAD).
    pub fn guest(guest: StagedGuest) -> Ready {
        let program = guest.program();
        Ready {
            change: Change::Guest {
                name: program.name.clone(),
                desc: program.desc.clone(),
                bytes: program.bytes.as_ref().clone(),
                ids: guest.ids(),
                user: program.owner.user.to_string(),
                db: program.owner.db,
            },
            staged: Staged::Guest(guest),
        }
    }

    /// Makes the change live here under number `version` (see `Registrations::version`)
    /// and replicates it (main thread, or the Redis lock held).
    pub fn commit(self, ctx: &Context, version: u64) {
        globals().registrations.advance(version);
        match self.staged {
            #[cfg(feature = "python")]
            Staged::Session(session) => {
                for other in session.install() {
                    ctx.replicate("RG.UNREGISTER", &[other.as_bytes()]);
                }
            }
            Staged::Guest(guest) => {
                guest.install();
            }
            // Its parts replicate themselves, in order.
            Staged::Restore(restore) => restore.commit(ctx, version),
            Staged::Checked => apply_checked(&self.change),
        }
        replicate(ctx, &self.change);
    }
}

#[cfg(feature = "python")]
fn stage_session(
    sid: &str,
    desc: &Option<String>,
    code: &str,
    ids: &[(usize, String)],
    replace_with: &Option<String>,
    owner: &RunAs,
) -> Result<Staged, String> {
    // pip takes seconds and touches no Redis: the session's requirements are installed
    // before the lock is taken (with it, this master would stop answering, its cluster
    // bus included).
    requirements::ensure(&requirements::of(code), false)?;
    let _ctx = lock::context();
    let staged = script::stage(
        sid,
        desc.clone(),
        code,
        ids.to_vec(),
        replace_with.clone(),
        owner,
    );
    lock::release_slice();
    Ok(Staged::Session(Box::new(staged?)))
}

/// Never called: without the Python host `globals().python` is false.
#[cfg(not(feature = "python"))]
fn stage_session(
    _sid: &str,
    _desc: &Option<String>,
    _code: &str,
    _ids: &[(usize, String)],
    _replace_with: &Option<String>,
    _owner: &RunAs,
) -> Result<Staged, String> {
    Err("this build of the module has no Python".into())
}

/// Stages a change that came from another master (a pool thread: it takes the Redis
/// lock where it needs it).
pub fn stage(change: Change) -> Result<Ready, String> {
    let staged = match &change {
        Change::Session {
            sid,
            desc,
            code,
            user,
            db,
            ids,
            replace_with,
        } => {
            if !globals().python {
                return Err("Python is disabled on this server (PythonEnabled 0)".into());
            }
            let owner = RunAs::new(user, *db);
            stage_session(sid, desc, code, ids, replace_with, &owner)?
        }
        Change::Guest {
            name,
            desc,
            bytes,
            ids,
            user,
            db,
        } => {
            // Compiling takes long and touches no Redis: without the lock.
            let program = guests::load(
                name,
                desc.clone(),
                bytes.clone(),
                true,
                RunAs::new(user, *db),
            )?;
            let _ctx = lock::context();
            let staged = guests::stage(program, true, Some(ids.clone()));
            lock::release_slice();
            Staged::Guest(staged?)
        }
        Change::Restore { mode, code } => Staged::Restore(restore::stage(*mode, code.clone())?),
        other => {
            let _ctx = lock::context();
            let checked = check(other);
            lock::release_slice();
            checked?;
            Staged::Checked
        }
    };
    Ok(Ready { change, staged })
}

/// Stages a change that needs no building, here (main thread): whether it can be made.
pub fn check_here(change: Change) -> Result<Ready, String> {
    check(&change)?;
    Ok(Ready {
        change,
        staged: Staged::Checked,
    })
}

fn check(change: &Change) -> Result<(), String> {
    match change {
        Change::DeleteGuest { name } => match guests::get(name) {
            Some(_) => Ok(()),
            None => Err(format!("guest '{name}' does not exist")),
        },
        Change::Unregister { id } => match globals().registrations.get(id) {
            Some(_) => Ok(()),
            None => Err(format!("registration {id} does not exist")),
        },
        Change::Pause { ids, .. } => {
            for id in ids {
                let r = globals()
                    .registrations
                    .get(id)
                    .ok_or_else(|| format!("registration {id} does not exist"))?;
                let reader = r.trigger.reader();
                if reader != "StreamReader" {
                    return Err(format!(
                        "Reader {reader} does not support pause (registration {id})"
                    ));
                }
            }
            Ok(())
        }
        Change::ClearStats | Change::Flush => Ok(()),
        Change::Session { .. } | Change::Guest { .. } | Change::Restore { .. } => {
            Err("a change that needs staging".into())
        }
    }
}

fn apply_checked(change: &Change) {
    match change {
        Change::DeleteGuest { name } => {
            let _ = guests::delete(name);
        }
        Change::Unregister { id } => {
            unregister_here(id);
        }
        Change::Pause { ids, paused } => {
            for id in ids {
                if let Some(r) = globals().registrations.get(id) {
                    r.set_paused(*paused);
                    if *paused {
                        // As 1.2: its queued executions do not run (their messages wait,
                        // unacknowledged, for the unpause).
                        abort_queued(id);
                    }
                }
            }
        }
        Change::ClearStats => {
            for r in globals().registrations.list() {
                *r.stats() = Stats::default();
            }
        }
        Change::Flush => restore::flush_here(),
        Change::Session { .. } | Change::Guest { .. } | Change::Restore { .. } => {}
    }
}

/// Removes a registration: its queued and running executions stop, its finished ones
/// are forgotten. Whether it existed.
pub fn unregister_here(id: &str) -> bool {
    if globals().registrations.remove(id).is_none() {
        return false;
    }
    for exec in globals().registry.list() {
        let mine = exec.registration.as_deref() == Some(id);
        if mine && !exec.status().is_finished() && exec.request_abort() == Abort::FinishedHere {
            crate::launch::trim(&exec);
        }
    }
    globals().registry.drop_registration(id);
    true
}

/// Aborts the executions of registration `id` that have not started yet.
fn abort_queued(id: &str) {
    for exec in globals().registry.list() {
        let queued = exec.status() == crate::engine::execution::Status::Created;
        if queued
            && exec.registration.as_deref() == Some(id)
            && exec.request_abort() == Abort::FinishedHere
        {
            crate::launch::trim(&exec);
        }
    }
}

/// Marks the owner in RG.INNERREGISTER (older streams have none: the default user, db 0).
pub const OWNER: &str = "OWNER";

/// Sends a change to this master's replicas and AOF as the command that replays it.
fn replicate(ctx: &Context, change: &Change) {
    match change {
        Change::Session {
            sid,
            desc,
            code,
            user,
            db,
            ids,
            ..
        } => {
            let db = db.to_string();
            let indices: Vec<String> = ids.iter().map(|(i, _)| i.to_string()).collect();
            let mut args: Vec<&[u8]> = vec![
                sid.as_bytes(),
                desc.as_deref().unwrap_or("").as_bytes(),
                code.as_bytes(),
                OWNER.as_bytes(),
                user.as_bytes(),
                db.as_bytes(),
            ];
            for ((_, id), index) in ids.iter().zip(&indices) {
                args.push(index.as_bytes());
                args.push(id.as_bytes());
            }
            ctx.replicate("RG.INNERREGISTER", args.as_slice());
        }
        Change::Guest {
            name,
            desc,
            bytes,
            ids,
            user,
            db,
        } => {
            let ids = ids.join(",");
            let has_desc = if desc.is_some() { "1" } else { "0" };
            let db = db.to_string();
            ctx.replicate(
                "RG.INNERWASM",
                &[
                    name.as_bytes(),
                    has_desc.as_bytes(),
                    desc.as_deref().unwrap_or("").as_bytes(),
                    ids.as_bytes(),
                    bytes,
                    user.as_bytes(),
                    db.as_bytes(),
                ][..],
            );
        }
        Change::DeleteGuest { name } => ctx.replicate("RG.WASMDELETE", &[name.as_bytes()]),
        Change::Unregister { id } => ctx.replicate("RG.UNREGISTER", &[id.as_bytes()]),
        Change::Pause { ids, paused } => {
            let command = if *paused {
                "RG.PAUSEREGISTRATIONS"
            } else {
                "RG.UNPAUSEREGISTRATIONS"
            };
            let args: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
            ctx.replicate(command, args.as_slice());
        }
        Change::Flush => ctx.replicate("RG.FLUSHCODE", &[] as &[&[u8]]),
        // Statistics are each node's own; a restore's parts replicated themselves.
        Change::ClearStats | Change::Restore { .. } => {}
    }
}

fn s(v: &str) -> Value {
    Value::str(v)
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Nil, Value::Str)
}

impl Change {
    pub fn encode(&self) -> Vec<u8> {
        let fields = match self {
            Change::Session {
                sid,
                desc,
                code,
                user,
                db,
                ids,
                replace_with,
            } => vec![
                s("session"),
                s(sid),
                opt(desc),
                s(code),
                s(user),
                Value::Int(*db as i64),
                Value::List(
                    ids.iter()
                        .flat_map(|(i, id)| [Value::Int(*i as i64), s(id)])
                        .collect(),
                ),
                opt(replace_with),
            ],
            Change::Guest {
                name,
                desc,
                bytes,
                ids,
                user,
                db,
            } => vec![
                s("guest"),
                s(name),
                opt(desc),
                Value::Bytes(bytes.clone()),
                Value::List(ids.iter().map(|id| s(id)).collect()),
                s(user),
                Value::Int(*db as i64),
            ],
            Change::DeleteGuest { name } => vec![s("delete-guest"), s(name)],
            Change::Unregister { id } => vec![s("unregister"), s(id)],
            Change::Pause { ids, paused } => vec![
                s("pause"),
                Value::List(ids.iter().map(|id| s(id)).collect()),
                Value::Bool(*paused),
            ],
            Change::ClearStats => vec![s("clear-stats")],
            Change::Restore { mode, code } => vec![s("restore"), s(mode.as_str()), code.body()],
            Change::Flush => vec![s("flush")],
        };
        codec::encode_one(&Value::List(fields))
    }

    pub fn decode(bytes: &[u8]) -> Result<Change> {
        let Value::List(fields) = codec::decode(bytes)? else {
            bail!("a change that is not a list");
        };
        let mut it = fields.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| anyhow!("a change with a field missing"))
        };
        let kind = text(next()?)?;
        Ok(match kind.as_str() {
            "session" => Change::Session {
                sid: text(next()?)?,
                desc: opt_text(next()?)?,
                code: text(next()?)?,
                user: text(next()?)?,
                db: int(next()?)? as i32,
                ids: {
                    let pairs = list(next()?)?;
                    if pairs.len() % 2 != 0 {
                        bail!("registration ids that are not pairs");
                    }
                    let mut ids = Vec::new();
                    let mut pairs = pairs.into_iter();
                    while let (Some(i), Some(id)) = (pairs.next(), pairs.next()) {
                        ids.push((int(i)? as usize, text(id)?));
                    }
                    ids
                },
                replace_with: opt_text(next()?)?,
            },
            "guest" => Change::Guest {
                name: text(next()?)?,
                desc: opt_text(next()?)?,
                bytes: match next()? {
                    Value::Bytes(b) => b,
                    _ => bail!("guest bytes that are not bytes"),
                },
                ids: list(next()?)?
                    .into_iter()
                    .map(text)
                    .collect::<Result<_>>()?,
                user: text(next()?)?,
                db: int(next()?)? as i32,
            },
            "delete-guest" => Change::DeleteGuest {
                name: text(next()?)?,
            },
            "unregister" => Change::Unregister { id: text(next()?)? },
            "pause" => Change::Pause {
                ids: list(next()?)?
                    .into_iter()
                    .map(text)
                    .collect::<Result<_>>()?,
                paused: matches!(next()?, Value::Bool(true)),
            },
            "clear-stats" => Change::ClearStats,
            "restore" => Change::Restore {
                mode: RestoreMode::parse(&text(next()?)?)?,
                code: Code::from_body(next()?)?,
            },
            "flush" => Change::Flush,
            other => bail!("an unknown change '{other}'"),
        })
    }
}

fn int(v: Value) -> Result<i64> {
    match v {
        Value::Int(i) if (0..=i64::from(i32::MAX)).contains(&i) => Ok(i),
        _ => bail!("a change field that is not a count"),
    }
}

fn list(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::List(items) => Ok(items),
        _ => bail!("a change field that is not a list"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back() {
        let changes = [
            Change::Session {
                sid: "s1".into(),
                desc: None,
                code: "GB().register()".into(),
                user: "alice".into(),
                db: 3,
                ids: vec![(0, "a-1".into()), (2, "a-7".into())],
                replace_with: Some("s0".into()),
            },
            Change::Guest {
                name: "g".into(),
                desc: Some("d".into()),
                bytes: vec![0, 97, 115, 109],
                ids: vec!["a-2".into(), String::new()],
                user: "default".into(),
                db: 0,
            },
            Change::DeleteGuest { name: "g".into() },
            Change::Unregister { id: "a-1".into() },
            Change::Pause {
                ids: vec!["a-1".into(), "a-2".into()],
                paused: true,
            },
            Change::ClearStats,
            Change::Flush,
        ];
        let restore = Change::Restore {
            mode: RestoreMode::Replace,
            code: Code {
                items: changes[1..2].to_vec(),
                paused: vec!["a-2".into()],
            },
        };
        let changes = changes.into_iter().chain([restore]);
        for change in changes {
            assert_eq!(Change::decode(&change.encode()).unwrap(), change);
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(Change::decode(b"\xc1").is_err());
        let unknown = codec::encode_one(&Value::List(vec![s("format-disk")]));
        assert!(Change::decode(&unknown).is_err());
        let short = codec::encode_one(&Value::List(vec![s("unregister")]));
        assert!(Change::decode(&short).is_err());
    }
}
