//! RG.DUMPCODE, RG.RESTORECODE, RG.FLUSHCODE: a server's code as data, like Redis's
//! FUNCTION DUMP / RESTORE / FLUSH. A restore and a flush are registration changes: made
//! on every master or none, replicated as the commands that replay their parts.

use redis_module::{Context, ContextFlags, RedisString};

use super::{apply, apply_everywhere, arity, ok, text, topology_now, Answer, Then};
use crate::distributed::changes::{self, Change};
use crate::distributed::code::Code;
use crate::distributed::restore::{self, RestoreMode};
use crate::engine::value::Value;
use crate::redis::blocked::{can_block, BlockedClient};
use crate::redis::offload::in_background;

/// RG.DUMPCODE: every session and guest of this server, with their registration ids and
/// owners, as one payload for RG.RESTORECODE.
pub fn dump(_ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    Ok(Answer::Reply(Value::Bytes(Code::here().to_payload())))
}

/// RG.RESTORECODE payload [APPEND | REPLACE | FLUSH]
pub fn restore(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, Some(3))?;
    let mode = match args.get(2) {
        None => RestoreMode::Append,
        Some(a) => RestoreMode::parse(&text(a)?).map_err(|e| format!("ERR {e}"))?,
    };
    if !can_block(ctx)
        || ctx
            .get_flags()
            .intersects(ContextFlags::LOADING | ContextFlags::REPLICATED)
    {
        // Never replicated as itself: what a replica or the AOF gets are its parts.
        return Err(
            "ERR RG.RESTORECODE can not run inside MULTI, a script, or a call from a module or a recipe"
                .into(),
        );
    }
    let code = Code::from_payload(args[1].as_slice()).map_err(|e| format!("ERR {e:#}"))?;
    // Refused here at once when it can be; checked again once staged.
    restore::check(mode, &code).map_err(|e| format!("ERR {e}"))?;
    topology_now(ctx);
    let client = BlockedClient::block(ctx, "RG.RESTORECODE")?;
    // Re-running scripts and compiling guests: on the helper, the client blocked. Should
    // the helper be gone, the task is dropped and the client's guard answers.
    let _ = in_background(
        move || match changes::stage(Change::Restore { mode, code }) {
            Ok(ready) => apply_everywhere(ready, Then::Reply(Value::Status("OK".into())), client),
            Err(e) => client.reply(&Value::Error(format!("ERR {e}"))),
        },
    );
    Ok(Answer::Blocked)
}

/// RG.FLUSHCODE: removes every registration, Python session and guest.
pub fn flush(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 1, Some(1))?;
    if ctx
        .get_flags()
        .intersects(ContextFlags::LOADING | ContextFlags::REPLICATED)
    {
        restore::flush_here();
        ctx.replicate_verbatim();
        return ok();
    }
    let ready = changes::check_here(Change::Flush).map_err(|e| format!("ERR {e}"))?;
    apply(
        ctx,
        ready,
        Then::Reply(Value::Status("OK".into())),
        "RG.FLUSHCODE",
    )
}
