//! Intercepting commands: CommandReader hooks (`register(hook=cmd)`) run instead of a
//! command, and KeysReader registrations with `commands=` hold the calling client until
//! their executions end. A command filter rewrites an intercepted `CMD args...` into
//! `RG.INNERHOOK CMD args...`, a module command that can block its own client. Commands
//! the module itself calls are not filtered (call_next and execute() reach the real
//! command), nor is anything while loading or on a replica (replication and AOF
//! traffic pass untouched).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redis_module::{raw, Context, ContextFlags, RedisString};

use crate::commands::Answer;
use crate::engine::execution::{ExecState, Execution};
use crate::engine::reader::VecReader;
use crate::engine::registration::{Registration, Trigger};
use crate::engine::value::Value;
use crate::redis::blocked::BlockedClient;
use crate::redis::call::{call, with_refs};
use crate::redis::door::{self, Caller};
use crate::state::globals;

pub struct HookTrigger {
    pub command: String,
    pub keyprefix: Option<String>,
    /// Position of the command's first key (0: none).
    pub first_key: usize,
}

impl Trigger for HookTrigger {
    fn reader(&self) -> &'static str {
        "CommandReader"
    }

    fn args(&self) -> Vec<(String, Value)> {
        vec![
            ("hook".into(), Value::str(self.command.as_str())),
            (
                "keyprefix".into(),
                self.keyprefix.clone().map_or(Value::Nil, Value::Str),
            ),
        ]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Commands that can never be hooked or intercepted.
const NOT_HOOKABLE: &[&str] = &[
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "function",
    "script",
    "wait",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "monitor",
    // A client's connection state, or the server's life: never someone else's code.
    "select",
    "auth",
    "hello",
    "reset",
    "quit",
    "debug",
    "shutdown",
    "sync",
    "psync",
    "replconf",
];

/// Checks that `command` can be intercepted; returns its first key position.
pub fn check_hookable(command: &str) -> Result<usize, String> {
    let name = command.to_ascii_lowercase();
    if name.starts_with("rg.") || NOT_HOOKABLE.contains(&name.as_str()) {
        return Err(format!("Can not hook or intercept the command '{command}'"));
    }
    let info = crate::readers::redis_call(&[b"COMMAND", b"INFO", name.as_bytes()])
        .map_err(|e| e.to_string())?;
    let Value::List(mut entries) = info else {
        return Err(format!("Unknown command '{command}'"));
    };
    let Some(Value::List(entry)) = entries.pop() else {
        return Err(format!("Unknown command '{command}'"));
    };
    let flags: Vec<String> = match entry.get(2) {
        Some(Value::List(flags)) => flags
            .iter()
            .map(|f| f.to_string().trim_matches('\'').to_string())
            .collect(),
        _ => Vec::new(),
    };
    if let Some(bad) = flags
        .iter()
        .find(|f| ["noscript", "movablekeys", "blocking"].contains(&f.as_str()))
    {
        return Err(format!(
            "Can not hook or intercept the command '{command}' (it is {bad})"
        ));
    }
    Ok(match entry.get(3) {
        Some(Value::Int(n)) if *n > 0 => *n as usize,
        _ => 0,
    })
}

/// The intercepted command names, recomputed when the registrations change.
struct Intercepted {
    generation: u64,
    names: HashSet<String>,
}

static INTERCEPTED: Mutex<Option<Intercepted>> = Mutex::new(None);

fn intercepted_now() -> HashSet<String> {
    let mut names = HashSet::new();
    for r in globals().registrations.list() {
        if let Some(h) = r.trigger.as_any().downcast_ref::<HookTrigger>() {
            names.insert(h.command.clone());
        }
        if let Some(k) = r
            .trigger
            .as_any()
            .downcast_ref::<super::keys::KeysTrigger>()
        {
            names.extend(k.commands.iter().flatten().map(|c| c.to_ascii_lowercase()));
        }
    }
    names
}

fn is_intercepted(name: &str) -> bool {
    let generation = globals().registrations.generation();
    let mut cache = INTERCEPTED.lock().unwrap_or_else(|e| e.into_inner());
    if cache.as_ref().is_none_or(|c| c.generation != generation) {
        let names = intercepted_now();
        *cache = Some(Intercepted { generation, names });
    }
    cache.as_ref().is_some_and(|c| c.names.contains(name))
}

/// Installs the command filter (at load).
pub fn install(ctx: &Context) {
    // SAFETY: `ctx` is the load context, used on the main thread during OnLoad (the
    // `Context` convention, redis/mod.rs). `filter` stays valid for the process: the
    // module cannot be unloaded (deinit refuses), and it is called only as its # Safety
    // asks.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.unwrap()(
            ctx.ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as i32,
        );
    }
}

/// The command filter: turns an intercepted command into RG.INNERHOOK.
///
/// # Safety
/// Only Redis may call it, as the command filter `install` registered: with `fctx` the
/// live filter context of the command about to run, by the thread that runs it, which
/// holds the Redis lock (the main thread, or a thread inside RedisModule_Call).
unsafe extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let _ = std::panic::catch_unwind(|| {
        // Commands the module calls itself (call_next, execute()) reach the real command:
        // NOSELF alone misses calls from worker threads.
        if crate::redis::lock::in_call() {
            return;
        }
        // SAFETY: `fctx` is live for this call, by a thread holding the Redis lock (the
        // function's contract). Argument 0 is checked non-null; its buffer is read while
        // the argument list is untouched (before any insert). GetContextFlags accepts a
        // NULL context (server flags only). The strings inserted are made without a
        // context (no automatic memory) and not freed or used here after the insert:
        // ArgInsert hands them to Redis, which may keep them past the filter.
        unsafe {
            let name = raw::RedisModule_CommandFilterArgGet.unwrap()(fctx, 0);
            if name.is_null() {
                return;
            }
            let mut len = 0usize;
            let ptr = raw::RedisModule_StringPtrLen.unwrap()(name, &mut len);
            let name = std::slice::from_raw_parts(ptr as *const u8, len);
            // ACL users may change (EXEC may hold an ACL command): permissions known so
            // far are asked again.
            if name.eq_ignore_ascii_case(b"acl") || name.eq_ignore_ascii_case(b"exec") {
                crate::redis::acl::users_may_have_changed();
            }
            let flags = raw::RedisModule_GetContextFlags.unwrap()(std::ptr::null_mut()) as u32;
            if flags & (raw::REDISMODULE_CTX_FLAGS_LOADING | raw::REDISMODULE_CTX_FLAGS_SLAVE) != 0
            {
                return;
            }
            if name.eq_ignore_ascii_case(b"rg.innerhook") {
                // Sent by a client (ours never passes here): marked, so it is refused.
                let mark = raw::RedisModule_CreateString.unwrap()(
                    std::ptr::null_mut(),
                    FROM_CLIENT.as_ptr() as *const c_char,
                    FROM_CLIENT.len(),
                );
                raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 1, mark);
                return;
            }
            if globals().registrations.generation() == 0
                || !is_intercepted(&String::from_utf8_lossy(name).to_ascii_lowercase())
            {
                return;
            }
            const INNER: &[u8] = b"RG.INNERHOOK";
            let arg = raw::RedisModule_CreateString.unwrap()(
                std::ptr::null_mut(),
                INNER.as_ptr() as *const c_char,
                INNER.len(),
            );
            raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 0, arg);
        }
    });
}

/// A hook execution's place in its chain.
struct HookFrame {
    command: String,
    /// Hooks behind it, next first.
    next: Vec<Arc<Registration>>,
}

/// Frames of running hook executions, by execution sequence number.
static FRAMES: Mutex<Option<std::collections::HashMap<u64, HookFrame>>> = Mutex::new(None);

fn frames<R>(f: impl FnOnce(&mut std::collections::HashMap<u64, HookFrame>) -> R) -> R {
    let mut guard = FRAMES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Default::default))
}

/// A command running for `commands=` registrations.
struct Intercept {
    command: String,
    execs: Vec<Arc<Execution>>,
    override_reply: Option<Value>,
}

thread_local! {
    static INTERCEPT: RefCell<Option<Intercept>> = const { RefCell::new(None) };
}

/// For KeysReader registrations with `commands=`: the command causing the current event,
/// if one is intercepted on this thread.
pub fn current_command() -> Option<String> {
    INTERCEPT.with(|i| i.borrow().as_ref().map(|i| i.command.clone()))
}

/// Notes an execution the intercepted command's client must wait for.
pub fn await_execution(exec: Arc<Execution>) {
    INTERCEPT.with(|i| {
        if let Some(i) = i.borrow_mut().as_mut() {
            i.execs.push(exec);
        }
    })
}

/// override_reply(): replaces the reply of the intercepted command (sync executions).
pub fn override_reply(v: Value) -> Result<(), String> {
    INTERCEPT.with(|i| match i.borrow_mut().as_mut() {
        Some(i) => {
            i.override_reply = Some(v);
            Ok(())
        }
        None => Err("override_reply() can only be used by a registration with commands= running in sync mode".into()),
    })
}

fn hooks_for(command: &str, args: &[Vec<u8>]) -> Vec<Arc<Registration>> {
    let mut hooks: Vec<Arc<Registration>> = globals()
        .registrations
        .list()
        .into_iter()
        .filter(|r| {
            r.trigger
                .as_any()
                .downcast_ref::<HookTrigger>()
                .is_some_and(|h| {
                    h.command == command
                        && h.keyprefix.as_ref().is_none_or(|p| {
                            h.first_key > 0
                                && args
                                    .get(h.first_key)
                                    .is_some_and(|k| k.starts_with(p.as_bytes()))
                        })
                })
        })
        .collect();
    // Last registered runs first.
    hooks.sort_by_key(|r| std::cmp::Reverse(registration_seq(&r.id)));
    hooks
}

fn registration_seq(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or(0)
}

fn hook_result(st: &ExecState) -> Value {
    if let Some(e) = st.errors.first() {
        return Value::Error(e.clone());
    }
    match st.results.as_slice() {
        [one] => one.clone(),
        many => Value::List(many.to_vec()),
    }
}

/// Starts `hook` over `[command, args...]` with `next` hooks behind it; `inline` runs it
/// here whatever its mode.
fn run_hook(
    hook: &Arc<Registration>,
    command: &str,
    args: &[Vec<u8>],
    next: Vec<Arc<Registration>>,
    inline: bool,
) -> Arc<Execution> {
    let record = Value::List(args.iter().map(|a| Value::from_redis_bytes(a)).collect());
    let frame = std::cell::Cell::new(Some(HookFrame {
        command: command.to_string(),
        next,
    }));
    let prepare = |exec: &Arc<Execution>| {
        if let Some(frame) = frame.take() {
            frames(|f| f.insert(exec.seq, frame));
            let seq = exec.seq;
            exec.on_finish(Box::new(move |_| {
                frames(|f| f.remove(&seq));
            }));
        }
    };
    super::set_force_inline(inline);
    let exec = super::fire_then(
        hook,
        Box::new(VecReader::new(vec![record])),
        None,
        Some(&prepare),
    );
    super::set_force_inline(false);
    exec
}

/// call_next(*args): the next hook of the running chain (run here), or the real command
/// (through the door, as the hook's `caller`).
pub fn call_next(caller: Caller, args: Vec<Vec<u8>>) -> Result<Value, String> {
    let current = crate::executions::current_execution();
    let frame = current
        .and_then(|seq| frames(|f| f.get(&seq).map(|h| (h.command.clone(), h.next.clone()))));
    let Some((command, next)) = frame else {
        return Err("call_next() can only be used by a hook".into());
    };
    let mut full = vec![command.clone().into_bytes()];
    full.extend(args);
    match next.split_first() {
        None => Ok(with_refs(&full, |refs| door::execute(caller, refs))),
        Some((hook, rest)) => {
            let exec = run_hook(hook, &command, &full, rest.to_vec(), true);
            let st = exec.state();
            Ok(hook_result(&st))
        }
    }
}

fn bytes(args: &[RedisString]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_slice().to_vec()).collect()
}

/// What the filter puts after an RG.INNERHOOK a client sent itself.
const FROM_CLIENT: &[u8] = b"\0sent-by-a-client";

/// RG.INNERHOOK CMD args...: what an intercepted command becomes.
pub fn inner_hook(ctx: &Context, args: &[RedisString]) -> Result<Answer, String> {
    crate::commands::arity(args, 2, None)?;
    if args[1].as_slice() == FROM_CLIENT {
        return Err("ERR unknown command 'RG.INNERHOOK': it is internal to the module".into());
    }
    let original = bytes(&args[1..]);
    let command = String::from_utf8_lossy(&original[0]).to_ascii_lowercase();
    let flags = ctx.get_flags();
    let refs: Vec<&[u8]> = original.iter().map(|a| a.as_slice()).collect();
    if flags.intersects(ContextFlags::REPLICATED | ContextFlags::LOADING) {
        return Ok(Answer::Reply(call(ctx, &refs)));
    }
    // The client's own permissions for the command it sent: a hook runs with its owner's,
    // so it must not let the client past its ACL.
    if let Some(user) = door::command_user(ctx) {
        crate::redis::acl::check(&user, &refs)?;
    }
    // Hooks and the command itself act on the client's database.
    let _db = super::event_db(crate::redis::lock::selected_db(ctx));
    let cannot_block = !crate::redis::blocked::can_block(ctx);
    let mut hooks = hooks_for(&command, &original);
    if !hooks.is_empty() {
        let first = hooks.remove(0);
        let exec = run_hook(&first, &command, &original, hooks, cannot_block);
        if exec.status().is_finished() {
            return Ok(Answer::Reply(hook_result(&exec.state())));
        }
        let client = BlockedClient::block(ctx, &command)?;
        exec.on_finish(Box::new(move |st| client.reply(&hook_result(st))));
        return Ok(Answer::Blocked);
    }
    // commands= registrations: run the command; events it raises start their executions.
    INTERCEPT.with(|i| {
        *i.borrow_mut() = Some(Intercept {
            command: command.clone(),
            execs: Vec::new(),
            override_reply: None,
        })
    });
    super::set_force_inline(cannot_block);
    let reply = call(ctx, &refs);
    super::set_force_inline(false);
    let intercept = INTERCEPT.with(|i| i.borrow_mut().take());
    let Some(intercept) = intercept else {
        return Ok(Answer::Reply(reply));
    };
    let pending: Vec<Arc<Execution>> = intercept
        .execs
        .into_iter()
        .filter(|e| !e.status().is_finished())
        .collect();
    let answer = intercept.override_reply.unwrap_or(reply);
    if pending.is_empty() {
        return Ok(Answer::Reply(answer));
    }
    let client = Arc::new(Mutex::new(Some(BlockedClient::block(ctx, &command)?)));
    let left = Arc::new(AtomicUsize::new(pending.len()));
    let answer = Arc::new(answer);
    for exec in pending {
        let (client, left, answer) = (client.clone(), left.clone(), answer.clone());
        exec.on_finish(Box::new(move |_| {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                if let Some(c) = client.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    c.reply(&answer);
                }
            }
        }));
    }
    Ok(Answer::Blocked)
}
