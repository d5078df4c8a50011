//! RG.INNERHOOK CMD args...: what the command filter (`redis/filter.rs`) turns a hooked
//! or intercepted command into. It runs the command's hook chain, or the command itself
//! for `commands=` registrations, and blocks the client until their executions end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redis_module::{Context, ContextFlags, RedisString};

use super::{arity, Answer};
use crate::engine::execution::Execution;
use crate::engine::value::Value;
use crate::redis::blocked::{can_block, BlockedClient};
use crate::redis::call::call;
use crate::redis::{acl, door, filter, lock};
use crate::triggers::event_db;
use crate::triggers::hooks::{chain, intercept};

pub fn inner_hook(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    arity(args, 2, None)?;
    if filter::sent_by_client(args[1].as_slice()) {
        return Err("ERR unknown command 'RG.INNERHOOK': it is internal to the module".into());
    }
    let original: Vec<Vec<u8>> = args[1..].iter().map(|a| a.as_slice().to_vec()).collect();
    let command = String::from_utf8_lossy(&original[0]).to_ascii_lowercase();
    let refs: Vec<&[u8]> = original.iter().map(|a| a.as_slice()).collect();
    if ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Ok(Answer::Reply(call(ctx, &refs)));
    }
    // The client's own permissions for the command it sent: a hook runs with its owner's,
    // so it must not let the client past its ACL.
    if let Some(user) = door::command_user(ctx) {
        acl::check(&user, &refs)?;
    }
    // Hooks and the command itself act on the client's database.
    let _db = event_db(lock::selected_db(ctx));
    let cannot_block = !can_block(ctx);
    if let Some(exec) = chain::start(&command, &original, cannot_block) {
        if exec.status().is_finished() {
            return Ok(Answer::Reply(chain::result(&exec.state())));
        }
        let client = BlockedClient::block(ctx, &command)?;
        exec.on_finish(Box::new(move |st| client.reply(&chain::result(st))));
        return Ok(Answer::Blocked);
    }
    // commands= registrations: run the command; events it raises start their executions.
    let (answer, pending, reply) = intercept::run(&command, cannot_block, || call(ctx, &refs));
    if pending.is_empty() {
        return Ok(Answer::Reply(reply.answer(answer)));
    }
    let client = BlockedClient::block(ctx, &command)?;
    reply_when_all_end(client, pending, answer, reply);
    Ok(Answer::Blocked)
}

/// Answers `client` once every one of `execs` has ended: with the reply an execution
/// gave (override_reply), else the command's own `answer`.
fn reply_when_all_end(
    client: BlockedClient,
    execs: Vec<Arc<Execution>>,
    answer: Value,
    reply: intercept::Reply,
) {
    let waiting = Arc::new(Mutex::new(Some((client, answer, reply))));
    let left = Arc::new(AtomicUsize::new(execs.len()));
    for exec in execs {
        let (waiting, left) = (waiting.clone(), left.clone());
        exec.on_finish(Box::new(move |_| {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                let done = waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((client, answer, reply)) = done {
                    client.reply(&reply.answer(answer));
                }
            }
        }));
    }
}
