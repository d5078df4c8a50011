//! RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS,
//! RG.PAUSEREGISTRATIONS, RG.UNPAUSEREGISTRATIONS.

use redis_module::{Context, ContextFlags, RedisString};

use super::{apply, arity, ok, text, Answer, Then};
use crate::distributed::changes::{self, Change};
use crate::engine::registration::Registration;
use crate::engine::value::Value;
use crate::globals::globals;

fn data(r: &Registration) -> Value {
    let st = r.stats().clone();
    let s = |x: &str| Value::str(x);
    let avg = if st.triggered > 0 {
        st.total_run_ms as f64 / st.triggered as f64
    } else {
        0.0
    };
    let extra: Vec<Value> = r
        .trigger
        .extra(r.is_paused())
        .into_iter()
        .flat_map(|(k, v)| [Value::Str(k), v])
        .collect();
    let args = r
        .trigger
        .args()
        .into_iter()
        .flat_map(|(k, v)| [Value::Str(k), v])
        .collect();
    let mut fields = vec![
        s("mode"),
        s(r.plan.mode.as_str()),
        s("numTriggered"),
        Value::Int(st.triggered as i64),
        s("numSuccess"),
        Value::Int(st.success as i64),
        s("numFailures"),
        Value::Int(st.failures as i64),
        s("numAborted"),
        Value::Int(st.aborted as i64),
        s("lastRunDurationMS"),
        Value::Int(st.last_run_ms as i64),
        s("totalRunDurationMS"),
        Value::Int(st.total_run_ms as i64),
        s("avgRunDurationMS"),
        Value::Float(avg),
        s("lastError"),
        st.last_error.map_or(Value::Nil, Value::Str),
        s("numOverflows"),
        Value::Int(st.overflows as i64),
    ];
    fields.extend(extra);
    fields.extend([s("args"), Value::List(args)]);
    Value::List(fields)
}

pub fn dump_registrations(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    let list = globals()
        .registrations
        .list()
        .iter()
        .map(|r| {
            Value::List(vec![
                Value::str("id"),
                Value::str(r.id.as_str()),
                Value::str("reader"),
                Value::str(r.trigger.reader()),
                Value::str("desc"),
                r.plan.desc.clone().map_or(Value::Nil, Value::Str),
                Value::str("RegistrationData"),
                data(r),
                Value::str("PD"),
                Value::Str(r.plan.text()),
                Value::str("ExecutionThreadPool"),
                Value::str("DefaultPool"),
            ])
        })
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}

/// Whether this command came from the primary's stream or the AOF: then it acts here
/// alone, as it did on the primary.
fn replayed(ctx: &Context) -> bool {
    ctx.get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
}

fn ok_everywhere(ctx: &Context, change: Change, command: &str) -> Result<Answer, String> {
    let ready = changes::check_here(change).map_err(|e| format!("ERR {e}"))?;
    apply(ctx, ready, Then::Reply(Value::Status("OK".into())), command)
}

pub fn unregister(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let id = text(&args[1])?;
    if replayed(ctx) {
        // A replica that never had it (or already lost it) has nothing to do.
        if changes::unregister_here(&id) {
            ctx.replicate_verbatim();
        }
        return ok();
    }
    ok_everywhere(ctx, Change::Unregister { id }, "RG.UNREGISTER")
}

pub fn clear_stats(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    ok_everywhere(ctx, Change::ClearStats, "RG.CLEARREGISTRATIONSSTATS")
}

fn set_paused(ctx: &Context, args: &[RedisString], paused: bool) -> Result<Answer, String> {
    arity(args, 2, None)?;
    let ids = args[1..].iter().map(text).collect::<Result<Vec<_>, _>>()?;
    let change = Change::Pause { ids, paused };
    if replayed(ctx) {
        // Statistics and consumption are the primary's; a replica keeps the flag for
        // when it is promoted.
        if let Ok(ready) = changes::check_here(change) {
            ready.commit(ctx, globals().registrations.version());
        }
        return ok();
    }
    let command = if paused {
        "RG.PAUSEREGISTRATIONS"
    } else {
        "RG.UNPAUSEREGISTRATIONS"
    };
    ok_everywhere(ctx, change, command)
}

pub fn pause(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    set_paused(ctx, args, true)
}

pub fn unpause(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    set_paused(ctx, args, false)
}
