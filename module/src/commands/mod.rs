//! RG.* commands, one file per family. Every handler runs behind `guarded`: a panic
//! becomes an error reply instead of taking Redis down.

pub mod categories;
pub mod cluster;
pub mod code;
pub mod config;
pub mod docs;
pub mod executions;
pub mod info;
pub mod inner_hook;
#[cfg(feature = "python")]
pub mod python;
#[cfg(not(feature = "python"))]
#[path = "python_off.rs"]
pub mod python;
pub mod redis_config;
pub mod registrations;
#[cfg(feature = "python")]
pub mod requirements;
#[cfg(not(feature = "python"))]
pub use python as requirements;
pub mod trigger;
pub mod wasm;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use redis_module::{Context, ContextFlags, RedisResult, RedisString, RedisValue};

use crate::distributed::changes::Ready;
use crate::distributed::everywhere;
use crate::engine::execution::{ExecState, Execution, RunAs};
use crate::engine::plan::Mode;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::{results_reply, run_here, submit, Launch, Movable};
use crate::redis::blocked::{can_block, BlockedClient};
use crate::redis::door;
use crate::redis::lock::{self, selected_db};
use crate::redis::offload::in_background;
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
    if !unblocking {
        exec.mark_transient();
    }
    if job.plan.mode == Mode::Sync {
        {
            let _movable = Movable::allow(can_block(ctx));
            run_here(job);
        }
        if unblocking {
            return Ok(Answer::Reply(Value::str(exec.id.as_str())));
        }
        // Ended here, or moved to the pool (a step returned a future).
        return answer_once_done(ctx, &exec, command, false, results_reply);
    }
    let spread = spreads(&job);
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
        answer_when_done(&exec, client, spread);
        Answer::Blocked
    };
    if spread {
        // The run routes keys by the topology: read it now, not a second late.
        topology_now(ctx);
    }
    launch_async(job);
    Ok(answer)
}

/// Whether a job's run may reach other shards.
fn spreads(job: &Launch) -> bool {
    job.plan.mode == Mode::Async && !job.inline
}

/// Answers `client` with the run's results once it has finished, then forgets the run.
fn answer_when_done(exec: &Arc<Execution>, client: BlockedClient, spread: bool) {
    answer_with_when_done(exec, client, spread, results_reply);
}

/// Answers the client with `reply` of the run's state: now if the run has ended, else
/// blocked until it has (a run that `spread` to other shards is forgotten there too).
/// Either way the run is forgotten once answered.
pub fn answer_once_done(
    ctx: &Context,
    exec: &Arc<Execution>,
    command: &str,
    spread: bool,
    reply: fn(&ExecState) -> Value,
) -> Result<Answer, String> {
    if exec.status().is_finished() {
        let value = reply(&exec.state());
        executions::forget_answered(exec, false);
        return Ok(Answer::Reply(value));
    }
    answer_with_when_done(exec, BlockedClient::block(ctx, command)?, spread, reply);
    Ok(Answer::Blocked)
}

/// Answers `client` with `reply` of the run's state once it has finished (on every shard
/// it `spread` to), then forgets the run.
fn answer_with_when_done(
    exec: &Arc<Execution>,
    client: BlockedClient,
    spread: bool,
    reply: fn(&ExecState) -> Value,
) {
    let done = exec.clone();
    exec.on_finish(Box::new(move |st| {
        // Forgotten first: the client's next command must not find it any more.
        executions::forget_answered(&done, spread);
        client.reply(&reply(st));
    }));
}

/// Reads the cluster's topology now (the timer reads it every second), on a cluster node.
pub fn topology_now(ctx: &Context) {
    if crate::distributed::cluster().is_some() {
        crate::distributed::refresh_topology(ctx);
    }
}

/// Starts a job that does not run here and now: across the cluster when it is an async
/// run on one, else on the pool.
fn launch_async(job: Launch) {
    if job.plan.mode == Mode::Async && !job.inline {
        if let Err(job) = crate::distributed::start(job) {
            submit(job);
        }
    } else {
        submit(job);
    }
}

/// What follows a registration change once it is live on every master.
pub enum Then {
    Reply(Value),
    /// The script's run(): its results (or its id, with UNBLOCKING) answer the client.
    Run {
        job: Launch,
        unblocking: bool,
        command: &'static str,
    },
}

impl Then {
    /// Follows at once, in the command's own context.
    pub fn now(self, ctx: &Context) -> Result<Answer, String> {
        match self {
            Then::Reply(v) => Ok(Answer::Reply(v)),
            Then::Run {
                job,
                unblocking,
                command,
            } => start(ctx, job, unblocking, command),
        }
    }
}

/// Makes a change staged here live on every master, or on none. Without other masters
/// it is committed at once; else the client waits while they stage and commit it
/// (`distributed::everywhere`), then it is committed here and `then` follows.
pub fn apply(ctx: &Context, ready: Ready, then: Then, command: &str) -> Result<Answer, String> {
    // The masters a change must reach: as they are now, not a second ago.
    topology_now(ctx);
    if everywhere::peers().is_empty() {
        ready.commit(ctx, everywhere::next_version());
        return then.now(ctx);
    }
    let client = BlockedClient::block(ctx, command)?;
    // Should the helper be gone, the task is dropped and the client's guard answers.
    let _ = in_background(move || apply_everywhere(ready, then, client));
    Ok(Answer::Blocked)
}

/// The part of `apply` that waits for the other masters (the helper thread).
pub fn apply_everywhere(ready: Ready, then: Then, client: BlockedClient) {
    let version = match everywhere::on_every_master(&ready.change) {
        Ok(version) => version,
        Err(e) => {
            if let Then::Run { job, .. } = &then {
                globals().registry.forget(&job.exec);
            }
            drop(ready);
            client.reply(&Value::Error(format!("ERR {e}")));
            return;
        }
    };
    let ctx = lock::context();
    ready.commit(&ctx, version);
    lock::release_slice();
    follow_with(then, client);
}

/// Follows with `then` for a client blocked earlier (off the main thread).
pub fn follow_with(then: Then, client: BlockedClient) {
    match then {
        Then::Reply(v) => client.reply(&v),
        Then::Run {
            job, unblocking, ..
        } => {
            let exec = job.exec.clone();
            if unblocking {
                client.reply(&Value::str(exec.id.as_str()));
            } else {
                exec.mark_transient();
                answer_when_done(&exec, client, spreads(&job));
            }
            launch_async(job);
        }
    }
}

/// Python commands answer an error when the server runs without Python.
pub fn python_on() -> Result<(), String> {
    if !globals().python {
        return Err("ERR Python is disabled on this server (PythonEnabled 0)".into());
    }
    Ok(())
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
