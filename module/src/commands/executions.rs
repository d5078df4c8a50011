//! RG.GETEXECUTION, RG.GETRESULTS, RG.GETRESULTSBLOCKING, RG.DROPEXECUTION,
//! RG.ABORTEXECUTION, RG.DUMPEXECUTIONS; on a cluster, GETEXECUTION `id CLUSTER` asks
//! every shard for its part, and DROP / ABORT reach every shard's part.

use std::sync::Arc;

use redis_module::{Context, RedisString};

use super::{arity, ok, text, Answer};
use crate::distributed;
use crate::engine::execution::{Abort, ExecState, Execution};
use crate::engine::registry::DropError;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::results_reply;
use crate::redis::blocked::BlockedClient;

const NOT_FOUND: &str = "execution plan does not exist";

/// Why an execution is gone when the byte bound dropped it (it starts as 1.2's text, so
/// clients matching that still do).
const DROPPED: &str = "execution plan does not exist: its results were dropped to respect \
                       MaxResultsBytes (fetch results sooner, or raise MaxResultsBytes)";

fn not_found(id: &str) -> String {
    if globals().registry.dropped_for_bytes(id) {
        DROPPED.into()
    } else {
        NOT_FOUND.into()
    }
}

fn find(args: &[RedisString]) -> Result<Arc<Execution>, String> {
    let id = text(&args[1])?;
    globals().registry.get(&id).ok_or_else(|| not_found(&id))
}

/// 1.2's execution plan, then what this module adds at its end: runtime entries and,
/// for a running execution's progress, records read and its start (unix ms).
fn plan_reply(exec: &Execution, st: &ExecState) -> Value {
    let s = |x: &str| Value::str(x);
    let steps = st
        .steps
        .iter()
        .map(|r| {
            Value::List(vec![
                s("type"),
                s(&r.type_name),
                s("duration"),
                Value::Int((r.nanos / 1_000_000) as i64),
                s("name"),
                s(&r.name),
                s("arg"),
                s(&r.arg),
            ])
        })
        .collect();
    let python_entries = st
        .entries
        .iter()
        .find(|(h, _)| *h == "python")
        .map_or(0, |(_, n)| *n);
    Value::List(vec![
        s("status"),
        s(st.status.as_str()),
        s("shards_received"),
        Value::Int(st.shards_received as i64),
        s("shards_completed"),
        Value::Int(st.shards_completed as i64),
        s("results"),
        Value::Int(st.results.len() as i64),
        s("errors"),
        Value::List(st.errors.iter().map(|e| Value::str(e.as_str())).collect()),
        s("total_duration"),
        Value::Int(st.duration_ms() as i64),
        s("read_duration"),
        Value::Int(st.read_ms as i64),
        s("steps"),
        Value::List(steps),
        s("python_entries"),
        Value::Int(python_entries as i64),
        s("records_read"),
        Value::Int(exec.records_read() as i64),
        s("started_at"),
        Value::Int(st.started_at_ms() as i64),
    ])
}

pub fn get_execution(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(3))?;
    let mut cluster_wide = false;
    if let Some(scope) = args.get(2) {
        let scope = text(scope)?.to_ascii_uppercase();
        if scope != "SHARD" && scope != "CLUSTER" {
            return Err(format!("ERR unknown option '{scope}' (SHARD or CLUSTER)"));
        }
        cluster_wide = scope == "CLUSTER";
    }
    let exec = find(args)?;
    if !cluster_wide || distributed::cluster().is_none() {
        return Ok(Answer::Reply(Value::List(vec![shard_entry(&exec)])));
    }
    // Every shard's part, as each shard tells it.
    let client = BlockedClient::block(ctx, "RG.GETEXECUTION")?;
    distributed::ask::ask_all(
        GET,
        &exec.id,
        Box::new(move |answers| {
            let entries = answers
                .into_iter()
                .map(|(_, a)| a)
                .filter(|a| !matches!(a, Value::Nil))
                .collect();
            client.reply(&Value::List(entries));
        }),
    );
    Ok(Answer::Blocked)
}

/// One shard's entry of RG.GETEXECUTION.
fn shard_entry(exec: &Execution) -> Value {
    let st = exec.state();
    Value::List(vec![
        Value::str("shard_id"),
        Value::str(globals().shard_id.as_str()),
        Value::str("execution_plan"),
        plan_reply(exec, &st),
    ])
}

/// The questions other shards ask about executions (`distributed::ask`).
const GET: &str = "getexecution";
const ABORT: &str = "abort";
const DROP: &str = "drop";

/// This shard's answer to another shard's question about execution `id`.
pub fn answer(what: &str, id: &str) -> Value {
    if what == super::registrations::STATS {
        return super::registrations::stats_here();
    }
    let Some(exec) = globals().registry.get(id) else {
        return Value::Nil;
    };
    match what {
        GET => shard_entry(&exec),
        ABORT => {
            abort_here(&exec);
            Value::Status("OK".into())
        }
        DROP => match globals().registry.drop_execution(id) {
            Ok(()) => Value::Status("OK".into()),
            Err(_) => Value::Nil,
        },
        _ => Value::Nil,
    }
}

/// Aborts this shard's part of an execution; whether it was a part of a distributed run.
fn abort_here(exec: &Arc<Execution>) -> bool {
    if distributed::give_up(&exec.id, "Execution was aborted") {
        return true;
    }
    if exec.request_abort() == Abort::FinishedHere {
        // Aborted before it started: no worker will note that it finished.
        crate::launch::trim(exec);
    }
    false
}

pub fn get_results(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let exec = find(args)?;
    let st = exec.state();
    if !st.status.is_finished() {
        return Err("ERR execution is still running".into());
    }
    Ok(Answer::Reply(results_reply(&st)))
}

pub fn get_results_blocking(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let exec = find(args)?;
    if exec.status().is_finished() {
        return Ok(Answer::Reply(results_reply(&exec.state())));
    }
    let client = BlockedClient::block(ctx, "RG.GETRESULTSBLOCKING")?;
    exec.on_finish(Box::new(move |st| client.reply(&results_reply(st))));
    Ok(Answer::Blocked)
}

pub fn drop_execution(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let id = text(&args[1])?;
    match globals().registry.drop_execution(&id) {
        Ok(()) => {
            // Every other shard's part goes too (those that have one).
            distributed::ask::ask_all(DROP, &id, Box::new(|_| {}));
            ok()
        }
        Err(DropError::NotFound) => Err(not_found(&id)),
        Err(DropError::Running) => {
            Err("ERR can not drop a running execution, abort it first".into())
        }
    }
}

/// RG.ABORTEXECUTION answers once the execution has stopped (as 1.2 does), so that a
/// client may drop it right after.
pub fn abort_execution(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let exec = find(args)?;
    if abort_here(&exec) {
        // Every other shard's part stops too.
        distributed::ask::ask_all(ABORT, &exec.id, Box::new(|_| {}));
    }
    if exec.status().is_finished() {
        return ok();
    }
    // A client that cannot wait (MULTI, a script) learns the abort was asked for.
    let Ok(client) = BlockedClient::block(ctx, "RG.ABORTEXECUTION") else {
        return ok();
    };
    exec.on_finish(Box::new(move |_| client.reply(&Value::Status("OK".into()))));
    Ok(Answer::Blocked)
}

/// Forgets a run once its waiting client has the results, as RedisGears 1.2 does: only
/// UNBLOCKING runs and registrations' event runs stay in RG.DUMPEXECUTIONS. A run spread
/// over the cluster is forgotten on every shard. May run with the execution's state locked.
pub fn forget_answered(exec: &Execution, spread: bool) {
    globals().registry.forget(exec);
    if spread && distributed::cluster().is_some() {
        distributed::ask::ask_all(DROP, &exec.id, Box::new(|_| {}));
    }
}

pub fn dump_executions(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    let list = globals()
        .registry
        .list()
        .iter()
        .map(|e| {
            let st = e.state();
            // 1.2's three fields, then when it started (unix ms, 0 before) and how long
            // it ran (so far, while it runs).
            Value::List(vec![
                Value::str("executionId"),
                Value::str(e.id.as_str()),
                Value::str("status"),
                Value::str(st.status.as_str()),
                Value::str("registered"),
                Value::Int(e.registration.is_some() as i64),
                Value::str("startedAt"),
                Value::Int(st.started_at_ms() as i64),
                Value::str("durationMs"),
                Value::Int(st.duration_ms() as i64),
            ])
        })
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}
