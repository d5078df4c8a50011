//! RG.PYEXECUTE, RG.PYSTATS, RG.PYDUMPSESSIONS.

use redis_module::{Context, RedisString};

use super::{
    apply, apply_everywhere, arity, follow_with, internal_only, python_on, run_as, strs, text,
    Answer, Then,
};
use crate::distributed::changes::{Ready, OWNER};
use crate::engine::execution::RunAs;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::Launch;
use crate::python::{profile, requirements, script, session};
use crate::redis::blocked::{can_block, BlockedClient};
use crate::redis::lock;
use crate::redis::offload::in_background;

struct Options {
    code: String,
    unblocking: bool,
    id: Option<String>,
    desc: Option<String>,
    upgrade: bool,
    replace_with: Option<String>,
    /// REQUIREMENTS: pip specs the session needs (the rest of the arguments).
    requirements: Vec<String>,
    /// FORCE_REINSTALL_REQUIREMENTS: install them again even when installed.
    force_reinstall: bool,
}

fn parse(args: &[RedisString]) -> Result<Options, String> {
    arity(args, 2, None)?;
    let code = args[1]
        .try_as_str()
        .map_err(|_| "ERR the script is not valid UTF-8".to_string())?
        .to_string();
    let mut opts = Options {
        code,
        unblocking: false,
        id: None,
        desc: None,
        upgrade: false,
        replace_with: None,
        requirements: Vec::new(),
        force_reinstall: false,
    };
    let mut i = 2;
    while i < args.len() {
        let option = text(&args[i])?.to_ascii_uppercase();
        let value = || -> Result<String, String> {
            args.get(i + 1)
                .map(text)
                .transpose()?
                .ok_or_else(|| format!("ERR {option} is missing"))
        };
        match option.as_str() {
            "UNBLOCKING" => opts.unblocking = true,
            "ID" => {
                opts.id = Some(value()?);
                i += 1;
            }
            "DESCRIPTION" => {
                opts.desc = Some(value()?);
                i += 1;
            }
            "UPGRADE" => opts.upgrade = true,
            "REPLACE_WITH" => {
                opts.replace_with = Some(value()?);
                i += 1;
            }
            "FORCE_REINSTALL_REQUIREMENTS" => opts.force_reinstall = true,
            "REQUIREMENTS" => {
                // As 1.2: every argument after it is a requirement.
                opts.requirements = args[i + 1..].iter().map(text).collect::<Result<_, _>>()?;
                if opts.requirements.is_empty() {
                    return Err("ERR REQUIREMENTS needs at least one requirement".into());
                }
                if let Some(bad) = opts.requirements.iter().find(|r| bad_requirement(r)) {
                    return Err(format!("ERR bad requirement '{bad}'"));
                }
                break;
            }
            other => return Err(format!("ERR Unknown arguments were given: {other}")),
        }
        i += 1;
    }
    Ok(opts)
}

/// A requirement pip would read as an option, or that spans lines, is refused.
fn bad_requirement(r: &str) -> bool {
    r.trim().is_empty() || r.starts_with('-') || r.contains(['\n', '\r', '\0'])
}

pub fn pyexecute(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    let mut opts = parse(args)?;
    python_on()?;
    if !can_block(ctx) {
        // A script can register, run sync or block its client: it never runs where
        // the client cannot be blocked, so it never stops half-way for that.
        return Err(
            "ERR RG.PYEXECUTE can not run inside MULTI, a script, or a call from a module or a recipe"
                .into(),
        );
    }
    if opts.upgrade && opts.id.is_none() {
        return Err("ERR UPGRADE needs the ID of the session to upgrade".into());
    }
    if let Some(other) = &opts.replace_with {
        if !session::exists(other) {
            return Err(format!(
                "ERR Can not replace with {other}, session does not exists"
            ));
        }
    }
    let owner = run_as(ctx)?;
    // The session's source carries its requirements (persisted and replicated with it).
    opts.code = requirements::attach(&opts.code, &opts.requirements);
    let install = opts.force_reinstall
        || !requirements::missing(&opts.requirements)
            .map_err(|e| format!("ERR {e}"))?
            .is_empty();
    if install {
        // pip takes seconds: the client waits while the helper installs, then the script
        // runs there with the Redis lock held.
        let client = BlockedClient::block(ctx, "RG.PYEXECUTE")?;
        in_background(move || {
            if let Err(e) = requirements::ensure(&opts.requirements, opts.force_reinstall) {
                client.reply(&Value::Error(format!("ERR {e}")));
                return;
            }
            let _locked = lock::context();
            let staged = stage(opts, &owner);
            lock::release_slice();
            match staged {
                Err(e) => client.reply(&Value::Error(e)),
                Ok((None, then)) => follow_with(then, client),
                Ok((Some(ready), then)) => apply_everywhere(ready, then, client),
            }
        })?;
        return Ok(Answer::Blocked);
    }
    match stage(opts, &owner)? {
        (None, then) => then.now(ctx),
        (Some(ready), then) => apply(ctx, ready, then, "RG.PYEXECUTE"),
    }
}

/// Runs the script (its registrations staged, its run compiled): the change it makes,
/// if any, and what follows.
fn stage(opts: Options, owner: &RunAs) -> Result<(Option<Ready>, Then), String> {
    let (session, displaced) = session::open(
        opts.id.clone(),
        opts.desc.clone(),
        &opts.code,
        owner.clone(),
        opts.upgrade,
    )
    .map_err(|e| format!("ERR {e}"))?;
    let replaces = displaced.is_some() || opts.replace_with.is_some();
    let outcome = script::execute(
        &opts.code,
        session,
        displaced,
        None,
        opts.replace_with.clone(),
        owner,
    )
    .map_err(|e| format!("ERR {e}"))?;
    let then = match outcome.run {
        None => Then::Reply(Value::Status("OK".into())),
        Some(run) => Then::Run {
            job: Launch {
                exec: run.exec,
                plan: run.plan,
                reader: run.reader,
                stages: run.stages,
                inline: false,
                then: None,
            },
            unblocking: opts.unblocking,
            command: "RG.PYEXECUTE",
        },
    };
    if outcome.staged.ids.is_empty() && !replaces {
        // Only a run: nothing changes on any master.
        drop(outcome.staged);
        return Ok((None, then));
    }
    let ready = Ready::session(outcome.staged, opts.desc.clone(), &opts.code, owner);
    Ok((Some(ready), then))
}

/// RG.PYDUMPSESSIONS [TS] [VERBOSE] [SESSIONS id ...]: VERBOSE shows each requirement
/// and registration in full (as RG.PYDUMPREQS and RG.DUMPREGISTRATIONS do); SESSIONS,
/// last, keeps the sessions named. TS (1.2: also sessions deleted while executions of
/// theirs still run) is accepted: a session here is listed while anything holds it.
pub fn pydumpsessions(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    let mut verbose = false;
    let mut only: Option<Vec<String>> = None;
    let mut i = 1;
    while i < args.len() {
        let option = text(&args[i])?.to_ascii_uppercase();
        match option.as_str() {
            "TS" => {}
            "VERBOSE" => verbose = true,
            "SESSIONS" => {
                only = Some(args[i + 1..].iter().map(text).collect::<Result<_, _>>()?);
                break;
            }
            _ => return Err(format!("ERR Unknown arguments were given: {option}")),
        }
        i += 1;
    }
    let registrations = globals().registrations.list();
    let platform = verbose.then(requirements::platform);
    let list = session::dump()
        .into_iter()
        .filter(|(id, _, _)| only.as_ref().is_none_or(|ids| ids.contains(id)))
        .map(|(id, desc, refs)| {
            let reqs = session::source(&id)
                .map(|(_, code, _)| requirements::of(&code))
                .unwrap_or_default();
            let needed = requirements::missing(&reqs).map_or(true, |m| !m.is_empty());
            let owned = registrations
                .iter()
                .filter(|r| r.session.as_deref() == Some(id.as_str()))
                .map(|r| match verbose {
                    true => super::registrations::entry_here(r),
                    false => Value::str(r.id.as_str()),
                })
                .collect();
            let reqs = match &platform {
                Some(platform) => Value::List(
                    reqs.iter()
                        .map(|r| super::requirements::entry(r, platform))
                        .collect(),
                ),
                None => strs(reqs.iter().map(String::as_str)),
            };
            Value::List(vec![
                Value::str("ID"),
                Value::Str(id),
                Value::str("sessionDescription"),
                desc.map_or(Value::Nil, Value::Str),
                Value::str("refCount"),
                Value::Int(refs as i64),
                Value::str("linked"),
                Value::str("primary"),
                Value::str("dead"),
                Value::str("false"),
                Value::str("requirementInstallationNeeded"),
                Value::Int(needed as i64),
                Value::str("requirements"),
                reqs,
                Value::str("registrations"),
                Value::List(owned),
            ])
        })
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}

pub fn pystats(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    python_on()?;
    let stats = crate::python::memory::stats();
    Ok(Answer::Reply(Value::List(vec![
        Value::str("TotalAllocated"),
        Value::Int(stats.total as i64),
        Value::str("PeakAllocated"),
        Value::Int(stats.peak as i64),
        Value::str("CurrAllocated"),
        Value::Int(stats.current as i64),
    ])))
}

/// RG.INNERREGISTER sid desc code [OWNER user db] [index id ...]: re-creates a session with
/// exactly these registrations (from the primary's replication stream or the AOF).
pub fn inner_register(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 4, None)?;
    internal_only(ctx, "RG.INNERREGISTER")?;
    python_on()?;
    let sid = text(&args[1])?;
    let desc = text(&args[2])?;
    let code = text(&args[3])?;
    let (owner, pairs) = match args.get(4).map(|a| a.as_slice()) {
        Some(marker) if marker == OWNER.as_bytes() && args.len() >= 7 => {
            let db = text(&args[6])?
                .parse()
                .map_err(|_| "ERR bad database in RG.INNERREGISTER".to_string())?;
            (RunAs::new(&text(&args[5])?, db), &args[7..])
        }
        _ => (RunAs::new("default", 0), &args[4..]),
    };
    if !pairs.len().is_multiple_of(2) {
        return Err("ERR RG.INNERREGISTER takes index id pairs after the code".into());
    }
    let mut ids = Vec::new();
    for pair in pairs.chunks(2) {
        let index: usize = text(&pair[0])?
            .parse()
            .map_err(|_| "ERR bad registration index".to_string())?;
        ids.push((index, text(&pair[1])?));
    }
    let desc = (!desc.is_empty()).then_some(desc);
    script::restore(&sid, desc, &code, ids, &owner).map_err(|e| format!("ERR {e}"))?;
    Ok(Answer::Reply(Value::Status("OK".into())))
}

/// RG.PYPROFILE STATS sid [order_by] | RESET sid: the cProfile statistics of a session's
/// steps, collected while ProfileExecutions is 1 (as text, ordered by `order_by`, one of
/// pstats' sort keys, tottime by default), or their reset.
pub fn pyprofile(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 3, Some(4))?;
    python_on()?;
    let action = text(&args[1])?.to_ascii_uppercase();
    let sid = text(&args[2])?;
    if !session::exists(&sid) {
        return Err(format!("ERR session {sid} does not exists"));
    }
    match (action.as_str(), args.get(3)) {
        ("STATS", order) => {
            let order = order
                .map(text)
                .transpose()?
                .unwrap_or_else(|| "tottime".into());
            let text = profile::stats(&sid, &order).map_err(|e| format!("ERR {e}"))?;
            let text = text.ok_or_else(|| {
                format!("ERR no profile of session {sid} (set ProfileExecutions 1, then run)")
            })?;
            Ok(Answer::Reply(Value::Str(text)))
        }
        ("RESET", None) => {
            profile::reset(&sid).map_err(|e| format!("ERR {e}"))?;
            Ok(Answer::Reply(Value::Status("OK".into())))
        }
        _ => Err(format!(
            "ERR Unknown arguments were given: {action} (STATS or RESET)"
        )),
    }
}
