//! RG.PYEXECUTE, RG.PYSTATS, RG.PYDUMPSESSIONS.

use redis_module::{Context, ContextFlags, RedisString};

use super::{arity, strs, text, Answer};
use crate::engine::plan::Mode;
use crate::engine::value::Value;
use crate::executions::{results_reply, run_here, submit};
use crate::python::{script, session};
use crate::redis::blocked::BlockedClient;
use crate::state::globals;

struct Options {
    code: String,
    unblocking: bool,
    id: Option<String>,
    desc: Option<String>,
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
    };
    let mut i = 2;
    while i < args.len() {
        let option = text(&args[i])?.to_ascii_uppercase();
        let value = || -> Result<String, String> {
            args.get(i + 1)
                .map(text)
                .transpose()?
                .ok_or_else(|| format!("ERR {option} needs a value"))
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
            // Options of sessions with registrations: accepted, they change nothing for a
            // script that only runs a job.
            "UPGRADE" => {}
            "REPLACE_WITH" => {
                value()?;
                i += 1;
            }
            "REQUIREMENTS" => {
                return Err(
                    "ERR REQUIREMENTS is not supported: install packages into the module's \
                            gears-python folder instead"
                        .into(),
                )
            }
            other => return Err(format!("ERR Unknown arguments were given: {other}")),
        }
        i += 1;
    }
    Ok(opts)
}

pub fn pyexecute(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    let opts = parse(args)?;
    if !globals().python {
        return Err("ERR Python is disabled on this server (PythonEnabled 0)".into());
    }
    if ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA)
    {
        return Err("ERR RG.PYEXECUTE can not run inside MULTI or a script".into());
    }
    let session = session::open(opts.id, opts.desc).map_err(|e| format!("ERR {e}"))?;
    let run = script::execute(&opts.code, session).map_err(|e| format!("ERR {e}"))?;
    let Some(run) = run else {
        return Ok(Answer::Reply(Value::Status("OK".into())));
    };
    let exec = run.exec;
    if run.mode == Mode::Sync {
        run_here(&exec, run.reader, run.stages);
        if opts.unblocking {
            return Ok(Answer::Reply(Value::str(exec.id.as_str())));
        }
        let reply = results_reply(&exec.state());
        return Ok(Answer::Reply(reply));
    }
    let answer = if opts.unblocking {
        Answer::Reply(Value::str(exec.id.as_str()))
    } else {
        let client = BlockedClient::block(ctx);
        exec.on_finish(Box::new(move |st| client.reply(&results_reply(st))));
        Answer::Blocked
    };
    submit(exec, run.reader, run.stages, true);
    Ok(answer)
}

pub fn pydumpsessions(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    let registrations = globals().registrations.list();
    let list = session::dump()
        .into_iter()
        .map(|(id, desc, refs)| {
            let owned = registrations
                .iter()
                .filter(|r| r.session.as_deref() == Some(id.as_str()))
                .map(|r| Value::str(r.id.as_str()))
                .collect();
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
                Value::Int(0),
                Value::str("requirements"),
                strs([]),
                Value::str("registrations"),
                Value::List(owned),
            ])
        })
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}

pub fn pystats(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    if !globals().python {
        return Err("ERR Python is disabled on this server (PythonEnabled 0)".into());
    }
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
