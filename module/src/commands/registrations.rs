//! RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS,
//! RG.PAUSEREGISTRATIONS, RG.UNPAUSEREGISTRATIONS.

use redis_module::{Context, ContextFlags, RedisString};

use super::{arity, ok, text, Answer};
use crate::engine::execution::Abort;
use crate::engine::registration::{Registration, Stats};
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

pub fn unregister(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let id = text(&args[1])?;
    let from_primary = ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING);
    match globals().registrations.remove(&id) {
        Some(_) => {
            // Its queued and running executions stop; its finished ones are forgotten.
            for exec in globals().registry.list() {
                let mine = exec.registration.as_deref() == Some(id.as_str());
                if mine
                    && !exec.status().is_finished()
                    && exec.request_abort() == Abort::FinishedHere
                {
                    crate::launch::trim(&exec);
                }
            }
            globals().registry.drop_registration(&id);
            ctx.replicate_verbatim();
            ok()
        }
        // A replica that never had it (or already lost it) has nothing to do.
        None if from_primary => ok(),
        None => Err(format!("ERR registration {id} does not exist")),
    }
}

pub fn clear_stats(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    for r in globals().registrations.list() {
        *r.stats() = Stats::default();
    }
    ok()
}

fn set_paused(args: &[RedisString], paused: bool) -> Result<Answer, String> {
    arity(args, 2, None)?;
    let mut found = Vec::new();
    for arg in &args[1..] {
        let id = text(arg)?;
        let r = globals()
            .registrations
            .get(&id)
            .ok_or_else(|| format!("ERR registration {id} does not exist"))?;
        if r.trigger.reader() != "StreamReader" {
            return Err(format!(
                "ERR registration {id} is not a stream registration"
            ));
        }
        found.push(r);
    }
    found.iter().for_each(|r| r.set_paused(paused));
    ok()
}

pub fn pause(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    set_paused(args, true)
}

pub fn unpause(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    set_paused(args, false)
}
