//! RG.* commands, one file per family. Every handler runs behind `guarded`: a panic
//! becomes an error reply instead of taking Redis down.

pub mod categories;
pub mod cluster;
pub mod config;
pub mod executions;
pub mod inner_hook;
pub mod python;
pub mod registrations;
pub mod trigger;
pub mod wasm;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{Context, ContextFlags, RedisResult, RedisString, RedisValue};

use crate::engine::execution::RunAs;
use crate::engine::plan::Mode;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::{results_reply, run_here, submit, Launch};
use crate::redis::blocked::BlockedClient;
use crate::redis::door;
use crate::redis::lock::selected_db;
use crate::redis::reply::reply;

/// What a handler answers.
pub enum Answer {
    Reply(Value),
    /// The client was blocked; it is answered later.
    Blocked,
}

pub type Handler = fn(&Context, &[RedisString]) -> Result<Answer, String>;

pub fn guarded(ctx: &Context, args: Vec<RedisString>, handler: Handler) -> RedisResult {
    let answer = catch_unwind(AssertUnwindSafe(|| handler(ctx, &args)));
    match answer {
        Ok(Ok(Answer::Reply(v))) => reply(ctx, &v),
        Ok(Ok(Answer::Blocked)) => {}
        Ok(Err(msg)) => reply(ctx, &Value::Error(msg)),
        Err(_) => reply(
            ctx,
            &Value::Error("ERR internal error (a bug was caught; Redis keeps running)".into()),
        ),
    }
    Ok(RedisValue::NoReply)
}

/// Starts a job: a sync one runs here, an async one on the worker pool. The client gets
/// the results (blocked until they exist) or, with UNBLOCKING, the execution id. A client
/// that cannot be blocked gets an error and the job does not start.
pub fn start(
    ctx: &Context,
    job: Launch,
    unblocking: bool,
    command: &str,
) -> Result<Answer, String> {
    let exec = job.exec.clone();
    if job.plan.mode == Mode::Sync {
        run_here(job);
        if unblocking {
            return Ok(Answer::Reply(Value::str(exec.id.as_str())));
        }
        return Ok(Answer::Reply(results_reply(&exec.state())));
    }
    let answer = if unblocking {
        Answer::Reply(Value::str(exec.id.as_str()))
    } else {
        let client = match BlockedClient::block(ctx, command) {
            Ok(client) => client,
            Err(e) => {
                globals().registry.forget(&exec);
                return Err(e);
            }
        };
        exec.on_finish(Box::new(move |st| client.reply(&results_reply(st))));
        Answer::Blocked
    };
    if job.plan.mode == Mode::Async && !job.inline {
        if crate::distributed::cluster().is_some() {
            // The run routes keys by the topology: read it now, not a second late.
            crate::distributed::refresh_topology(ctx);
        }
        if let Err(job) = crate::distributed::start(job) {
            submit(job);
        }
    } else {
        submit(job);
    }
    Ok(answer)
}

/// Text of an argument; commands take UTF-8 names and options.
pub fn text(arg: &RedisString) -> Result<String, String> {
    arg.try_as_str()
        .map(|s| s.to_string())
        .map_err(|_| "ERR an argument is not valid UTF-8".to_string())
}

pub fn arity(args: &[RedisString], min: usize, max: Option<usize>) -> Result<(), String> {
    let n = args.len();
    if n < min || max.is_some_and(|m| n > m) {
        let name = args
            .first()
            .and_then(|a| a.try_as_str().ok())
            .unwrap_or("command");
        return Err(format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }
    Ok(())
}

/// Whom code sent by this command's client acts for: that client's ACL user (or the
/// owner of the code that called the command), in the database it has selected.
pub fn run_as(ctx: &Context) -> Result<RunAs, String> {
    let user = door::command_user(ctx).ok_or_else(|| {
        "ERR this command needs a client with an ACL user (a module called it without one)"
            .to_string()
    })?;
    Ok(RunAs::new(&user, selected_db(ctx)))
}

/// Internal commands (RG.INNER*) are accepted from replication and AOF loading only.
pub fn internal_only(ctx: &Context, command: &str) -> Result<(), String> {
    if ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Ok(());
    }
    Err(format!(
        "ERR {command} is internal to the module: it is accepted only from replication and AOF loading"
    ))
}

pub fn ok() -> Result<Answer, String> {
    Ok(Answer::Reply(Value::Status("OK".into())))
}

pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::List(items.into_iter().map(Value::str).collect())
}
