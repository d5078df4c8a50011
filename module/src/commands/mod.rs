//! RG.* commands, one file per family. Every handler runs behind `guarded`: a panic
//! becomes an error reply instead of taking Redis down.

pub mod config;
pub mod executions;
pub mod python;
pub mod registrations;
pub mod trigger;
pub mod wasm;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use redis_module::{Context, RedisResult, RedisString, RedisValue};

use crate::engine::compile::Stage;
use crate::engine::execution::Execution;
use crate::engine::plan::Mode;
use crate::engine::reader::Reader;
use crate::engine::value::Value;
use crate::executions::{results_reply, run_here, submit};
use crate::redis::blocked::BlockedClient;
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

/// A job RG.PYEXECUTE or RG.WASMRUN built, ready to start.
pub struct Job {
    pub exec: Arc<Execution>,
    pub reader: Box<dyn Reader>,
    pub stages: Vec<Stage>,
    pub mode: Mode,
    /// Whether its steps are Python's (they run on the pool's Python workers).
    pub python: bool,
}

/// Starts a job: a sync one runs here, an async one on the worker pool. The client gets
/// the results (blocked until they exist) or, with UNBLOCKING, the execution id.
pub fn start(ctx: &Context, job: Job, unblocking: bool) -> Answer {
    let exec = job.exec;
    if job.mode == Mode::Sync {
        run_here(&exec, job.reader, job.stages);
        if unblocking {
            return Answer::Reply(Value::str(exec.id.as_str()));
        }
        return Answer::Reply(results_reply(&exec.state()));
    }
    let answer = if unblocking {
        Answer::Reply(Value::str(exec.id.as_str()))
    } else {
        let client = BlockedClient::block(ctx);
        exec.on_finish(Box::new(move |st| client.reply(&results_reply(st))));
        Answer::Blocked
    };
    submit(exec, job.reader, job.stages, job.python);
    answer
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

pub fn ok() -> Result<Answer, String> {
    Ok(Answer::Reply(Value::Status("OK".into())))
}

pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::List(items.into_iter().map(Value::str).collect())
}
