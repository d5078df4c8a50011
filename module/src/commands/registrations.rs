//! RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS,
//! RG.PAUSEREGISTRATIONS, RG.UNPAUSEREGISTRATIONS.

use redis_module::{Context, ContextFlags, RedisString};

use super::{apply, arity, ok, text, Answer, Then};
use crate::distributed::changes::{self, Change};
use std::collections::HashMap;

use crate::engine::registration::{Registration, Stats};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::redis::blocked::BlockedClient;
use crate::wasm::guests;

fn data(r: &Registration, st: Stats) -> Value {
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

/// The question RG.DUMPREGISTRATIONS CLUSTER asks every master.
pub const STATS: &str = "registration-stats";

/// This shard's answer to [`STATS`]: `[id, triggered, success, failures, aborted,
/// last run ms, total run ms, last error, overflows]` per registration.
pub fn stats_here() -> Value {
    let int = |n: u64| Value::Int(n as i64);
    Value::List(
        globals()
            .registrations
            .list()
            .iter()
            .map(|r| {
                let st = r.stats().clone();
                Value::List(vec![
                    Value::str(r.id.as_str()),
                    int(st.triggered),
                    int(st.success),
                    int(st.failures),
                    int(st.aborted),
                    int(st.last_run_ms),
                    int(st.total_run_ms),
                    st.last_error.map_or(Value::Nil, Value::Str),
                    int(st.overflows),
                ])
            })
            .collect(),
    )
}

/// One shard's answer to [`STATS`], by registration id.
fn read_stats(answer: &Value) -> HashMap<String, Stats> {
    let Value::List(entries) = answer else {
        return HashMap::new();
    };
    let n = |v: &Value| match v {
        Value::Int(i) => *i as u64,
        _ => 0,
    };
    entries
        .iter()
        .filter_map(|e| match e {
            Value::List(f) if f.len() == 9 => {
                let Value::Str(id) = &f[0] else { return None };
                let st = Stats {
                    triggered: n(&f[1]),
                    success: n(&f[2]),
                    failures: n(&f[3]),
                    aborted: n(&f[4]),
                    last_run_ms: n(&f[5]),
                    total_run_ms: n(&f[6]),
                    last_error: match &f[7] {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    },
                    overflows: n(&f[8]),
                };
                Some((id.clone(), st))
            }
            _ => None,
        })
        .collect()
}

/// RG.DUMPREGISTRATIONS [CLUSTER]: this shard's registrations with this shard's
/// statistics (as 1.2); with CLUSTER, the statistics are every master's summed.
pub fn dump_registrations(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(2))?;
    let Some(option) = args.get(1) else {
        return Ok(Answer::Reply(dump(|r| r.stats().clone())));
    };
    let option = text(option)?;
    if !option.eq_ignore_ascii_case("CLUSTER") {
        return Err(format!("ERR Unknown arguments were given: {option}"));
    }
    let client = BlockedClient::block(ctx, "RG.DUMPREGISTRATIONS")?;
    crate::distributed::ask::ask_all(
        STATS,
        "",
        Box::new(move |answers| {
            let shards: Vec<HashMap<String, Stats>> =
                answers.iter().map(|(_, a)| read_stats(a)).collect();
            client.reply(&dump(|r| {
                let mut sum = Stats::default();
                for shard in &shards {
                    if let Some(st) = shard.get(&r.id) {
                        sum.add(st);
                    }
                }
                sum
            }));
        }),
    );
    Ok(Answer::Blocked)
}

fn dump(stats: impl Fn(&Registration) -> Stats) -> Value {
    let list = globals()
        .registrations
        .list()
        .iter()
        .map(|r| entry(r, stats(r)))
        .collect();
    Value::List(list)
}

/// One registration as RG.DUMPREGISTRATIONS shows it, with `stats`.
fn entry(r: &Registration, stats: Stats) -> Value {
    Value::List(vec![
        Value::str("id"),
        Value::str(r.id.as_str()),
        Value::str("reader"),
        Value::str(r.trigger.reader()),
        Value::str("desc"),
        r.plan.desc.clone().map_or(Value::Nil, Value::Str),
        Value::str("RegistrationData"),
        data(r, stats),
        Value::str("PD"),
        Value::Str(r.plan.text()),
        Value::str("ExecutionThreadPool"),
        Value::str("DefaultPool"),
        // After 1.2's fields: who made it (a guest or a session), its description (RG.WASMUPLOAD's
        // or RG.PYEXECUTE's DESCRIPTION) and the user its runs act for.
        Value::str("owner"),
        Value::Str(r.owner_name()),
        Value::str("ownerDescription"),
        owner_description(r).map_or(Value::Nil, Value::Str),
        Value::str("user"),
        Value::str(&*r.run_as.user),
    ])
}

/// The description its guest or its Python session was given.
fn owner_description(r: &Registration) -> Option<String> {
    if let Some(guest) = &r.guest {
        return guests::get(guest)?.desc.clone();
    }
    crate::python::session::source(r.session.as_deref()?)?.0
}

/// One registration as RG.DUMPREGISTRATIONS shows it on this shard.
pub fn entry_here(r: &Registration) -> Value {
    entry(r, r.stats().clone())
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

/// RG.UNREGISTER id [abortpending]: the registration's queued and running executions
/// are aborted either way (1.2 aborts the queued ones only when asked; a queued run of a
/// registration that is gone has nothing left to run for).
pub fn unregister(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(3))?;
    if let Some(option) = args.get(2) {
        let option = text(option)?;
        if !option.eq_ignore_ascii_case("abortpending") {
            return Err(format!("ERR Unknown arguments were given: {option}"));
        }
    }
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
