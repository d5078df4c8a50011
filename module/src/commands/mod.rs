//! RG.* commands, one file per family. Every handler runs behind `guarded`: a panic
//! becomes an error reply instead of taking Redis down.

pub mod config;
pub mod executions;
pub mod python;
pub mod registrations;
pub mod trigger;
pub mod wasm;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{Context, RedisResult, RedisString, RedisValue};

use crate::engine::value::Value;
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
