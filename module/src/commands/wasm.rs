//! RG.WASMUPLOAD, RG.WASMRUN, RG.WASMLIST, RG.WASMDELETE (and RG.INNERWASM, which carries
//! an upload to replicas and the AOF with its registration ids).

use std::sync::Arc;

use redis_module::{Context, ContextFlags, RedisString};

use super::{
    apply, apply_everywhere, arity, internal_only, ok, run_as, start, text, topology_now, Answer,
    Then,
};
use crate::config::{self, Key};
use crate::distributed::changes::{self, Change, Ready};
use crate::distributed::everywhere;
use crate::engine::execution::RunAs;
use crate::engine::plan::Mode;
use crate::engine::value::Value;
use crate::globals::globals;
use crate::launch::Launch;
use crate::plans::readers::reader_of;
use crate::redis::blocked::{can_block, cannot_block, BlockedClient};
use crate::redis::lock;
use crate::redis::offload::in_background;
use crate::wasm::{described, guests};

/// RG.WASMUPLOAD name [REPLACE] [DESCRIPTION d] <component bytes>
pub fn upload(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 3, None)?;
    let name = text(&args[1])?;
    let bytes = args[args.len() - 1].as_slice().to_vec();
    let mut replace = false;
    let mut desc = None;
    let mut i = 2;
    while i < args.len() - 1 {
        match text(&args[i])?.to_ascii_uppercase().as_str() {
            "REPLACE" => replace = true,
            "DESCRIPTION" if i + 1 < args.len() - 1 => {
                desc = Some(text(&args[i + 1])?);
                i += 1;
            }
            "DESCRIPTION" => return Err("ERR DESCRIPTION needs a value".into()),
            other => return Err(format!("ERR Unknown arguments were given: {other}")),
        }
        i += 1;
    }
    if ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA)
    {
        return Err("ERR RG.WASMUPLOAD can not run inside MULTI or a script".into());
    }
    // Loading an AOF, applying a primary's stream, or a caller that cannot block (a
    // module's RM_Call): stay synchronous, on this master alone.
    let owner = run_as(ctx)?;
    let flags = ctx.get_flags();
    if flags.intersects(ContextFlags::LOADING | ContextFlags::REPLICATED) {
        let version = globals().registrations.version();
        return install_here(ctx, &name, desc, bytes, replace, owner, version);
    }
    if flags.intersects(ContextFlags::DENY_BLOCKING) {
        if !everywhere::peers().is_empty() {
            return Err(cannot_block("RG.WASMUPLOAD on a cluster"));
        }
        let version = everywhere::next_version();
        return install_here(ctx, &name, desc, bytes, replace, owner, version);
    }
    // Compiling and describing take up to WasmMaxCallMillis: off the main thread, with
    // the client blocked; then staged with the Redis lock, made on every master (or on
    // none), installed, replicated and answered.
    guests::precheck(&name, desc.as_deref(), replace).map_err(|e| format!("ERR {e}"))?;
    topology_now(ctx);
    let client = BlockedClient::block(ctx, "RG.WASMUPLOAD")?;
    let _ = in_background(move || {
        let staged = guests::load(&name, desc, bytes, replace, owner).and_then(|program| {
            let _ctx = lock::context();
            let staged = guests::stage(program, replace, None);
            lock::release_slice();
            staged
        });
        match staged {
            Ok(staged) => apply_everywhere(
                Ready::guest(staged),
                Then::Reply(Value::Status("OK".into())),
                client,
            ),
            Err(e) => client.reply(&Value::Error(format!("ERR {e}"))),
        }
    });
    Ok(Answer::Blocked)
}

/// Installs an upload at once, on this master alone, and replicates it.
fn install_here(
    ctx: &Context,
    name: &str,
    desc: Option<String>,
    bytes: Vec<u8>,
    replace: bool,
    owner: RunAs,
    version: u64,
) -> Result<Answer, String> {
    let program =
        guests::load(name, desc, bytes, replace, owner).map_err(|e| format!("ERR {e}"))?;
    let staged = guests::stage(program, replace, None).map_err(|e| format!("ERR {e}"))?;
    Ready::guest(staged).commit(ctx, version);
    ok()
}

/// RG.INNERWASM name has_desc desc ids bytes [user db]: re-creates a guest with exactly
/// these registration ids and owner (from the primary's replication stream or the AOF;
/// older streams carry no owner: the default user, db 0).
pub fn inner_upload(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 6, Some(8))?;
    internal_only(ctx, "RG.INNERWASM")?;
    let name = text(&args[1])?;
    let desc = (text(&args[2])? == "1")
        .then(|| text(&args[3]))
        .transpose()?;
    let ids: Vec<String> = text(&args[4])?.split(',').map(str::to_string).collect();
    let bytes = args[5].as_slice().to_vec();
    let owner = match args.get(6..8) {
        Some([user, db]) => RunAs::new(
            &text(user)?,
            text(db)?
                .parse()
                .map_err(|_| "ERR bad database in RG.INNERWASM".to_string())?,
        ),
        _ => RunAs::new("default", 0),
    };
    guests::install(&name, desc, bytes, true, Some(ids), owner).map_err(|e| format!("ERR {e}"))?;
    ok()
}

/// RG.WASMRUN name job [UNBLOCKING] [arg ...]
pub fn run(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 3, None)?;
    let name = text(&args[1])?;
    let job_name = text(&args[2])?;
    let mut rest = &args[3..];
    let unblocking = rest.first().is_some_and(|a| {
        a.try_as_str()
            .is_ok_and(|s| s.eq_ignore_ascii_case("UNBLOCKING"))
    });
    if unblocking {
        rest = &rest[1..];
    }
    let run_args = rest.iter().map(text).collect::<Result<Vec<_>, _>>()?;
    let program = guests::get(&name).ok_or_else(|| format!("ERR guest '{name}' does not exist"))?;
    let job = program
        .job(&job_name)
        .ok_or_else(|| format!("ERR guest '{name}' has no job '{job_name}'"))?;
    let plan = described::job_plan(&program, job, run_args).map_err(|e| format!("ERR {e}"))?;
    if plan.mode != Mode::Sync && !can_block(ctx) {
        return Err(
            "ERR an async job can not run inside MULTI, a script, or a call from a module or a recipe"
                .into(),
        );
    }
    let reader = reader_of(&plan).map_err(|e| format!("ERR {e:#}"))?;
    let profile = config::get(Key::ProfileExecutions) == 1;
    let stages = plan
        .compile(profile, plan.mode == Mode::Sync)
        .map_err(|e| format!("ERR {e:#}"))?;
    // A job acts for the guest's owner and for the client that runs it: both must be
    // allowed every call (neither gains the other's permissions).
    let client = run_as(ctx)?;
    let acting = RunAs::new(&program.owner.user, client.db).invoked_by(Some(client.user));
    let exec = globals().registry.create(None, plan.reports(), acting);
    let job = Launch {
        exec,
        plan: Arc::new(plan),
        reader,
        stages,
        inline: false,
        then: None,
    };
    start(ctx, job, unblocking, "RG.WASMRUN")
}

/// RG.WASMLIST [WITHCODE]
pub fn list(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(2))?;
    let with_code = match args.get(1) {
        None => false,
        Some(a) if text(a)?.eq_ignore_ascii_case("WITHCODE") => true,
        Some(a) => return Err(format!("ERR Unknown arguments were given: {}", text(a)?)),
    };
    let list = guests::list()
        .into_iter()
        .map(|p| {
            let jobs = p
                .description
                .jobs
                .iter()
                .map(|j| Value::str(j.name.as_str()))
                .collect();
            let regs = guests::ids_of(&p)
                .into_iter()
                .filter(|id| !id.is_empty())
                .map(Value::Str)
                .collect();
            let mut entry = vec![
                Value::str("name"),
                Value::str(p.name.as_str()),
                Value::str("size"),
                Value::Int(p.bytes.len() as i64),
                Value::str("hash"),
                Value::str(p.hash.as_str()),
                Value::str("description"),
                p.desc.clone().map_or(Value::Nil, Value::Str),
                Value::str("contract"),
                Value::str(p.version.as_str()),
                Value::str("jobs"),
                Value::List(jobs),
                Value::str("registrations"),
                Value::List(regs),
            ];
            if with_code {
                entry.push(Value::str("code"));
                entry.push(Value::Bytes(p.bytes.as_ref().clone()));
            }
            Value::List(entry)
        })
        .collect();
    Ok(Answer::Reply(Value::List(list)))
}

/// RG.WASMDELETE name
pub fn delete(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(2))?;
    let name = text(&args[1])?;
    if ctx
        .get_flags()
        .intersects(ContextFlags::LOADING | ContextFlags::REPLICATED)
    {
        guests::delete(&name).map_err(|e| format!("ERR {e}"))?;
        ctx.replicate_verbatim();
        return ok();
    }
    let ready =
        changes::check_here(Change::DeleteGuest { name }).map_err(|e| format!("ERR {e}"))?;
    apply(
        ctx,
        ready,
        Then::Reply(Value::Status("OK".into())),
        "RG.WASMDELETE",
    )
}
