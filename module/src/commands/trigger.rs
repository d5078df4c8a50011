//! RG.TRIGGER and RG.TRIGGERONKEY.

use redis_module::{Context, RedisString};

use super::{answer_once_done, arity, text, Answer};
use crate::engine::execution::ExecState;
use crate::engine::plan::Mode;
use crate::engine::reader::VecReader;
use crate::engine::value::Value;
use crate::launch::Movable;
use crate::redis::blocked::can_block;
use crate::redis::door;
use crate::redis::lock::selected_db;
use crate::triggers::{command, event_from, fire};

/// The results as a flat array; the first error becomes an error reply.
fn trigger_reply(st: &ExecState) -> Value {
    match st.errors.first() {
        Some(e) => Value::Error(e.clone()),
        None => Value::List(st.results.clone()),
    }
}

fn run_trigger(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    let name = text(&args[1])?;
    let reg = command::find(&name).ok_or_else(|| format!("ERR Unknown trigger '{name}'"))?;
    let record = Value::List(
        args[1..]
            .iter()
            .map(|a| Value::from_redis_bytes(a.as_slice()))
            .collect(),
    );
    if reg.plan.mode != Mode::Sync && !can_block(ctx) {
        return Err(
            "ERR can not run a non-sync execution inside a MULTI/LUA (nor in a call from a module or a recipe)"
                .into(),
        );
    }
    let invoker = door::command_user(ctx);
    let _origin = event_from(selected_db(ctx), invoker.as_deref());
    // A sync run may move to the pool (a step returned a future): its client then waits.
    let exec = {
        let _movable = Movable::allow(can_block(ctx));
        fire(&reg, Box::new(VecReader::new(vec![record])))
    };
    // Once its client has the reply, the run is forgotten (as 1.2 does); the
    // registration's statistics keep it counted.
    answer_once_done(ctx, &exec, "RG.TRIGGER", true, trigger_reply)
}

pub fn trigger(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, None)?;
    run_trigger(ctx, args)
}

pub fn trigger_on_key(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 3, None)?;
    run_trigger(ctx, args)
}
