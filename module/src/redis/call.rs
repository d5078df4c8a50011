//! Calling Redis commands from module code and turning replies into Values.

use redis_module::{CallOptionsBuilder, CallReply, CallResult, Context};

use crate::engine::value::Value;

/// How user code's calls differ from the module's own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// The module's own calls, and Python's: any command.
    Full,
    /// As a Lua script may call: no `noscript` command, no write when over maxmemory.
    Script,
}

/// Runs a command on `ctx` (which the caller may use: main thread or lock held).
/// Writes are replicated; an error reply becomes `Value::Error`.
pub fn call(context: &Context, args: &[&[u8]]) -> Value {
    call_in(context, args, Mode::Full)
}

/// As `call`, in `mode`.
pub fn call_in(context: &Context, args: &[&[u8]], mode: Mode) -> Value {
    let Some((cmd, rest)) = args.split_first() else {
        return Value::Error("ERR no command given".into());
    };
    let Ok(cmd) = std::str::from_utf8(cmd) else {
        return Value::Error("ERR the command name is not UTF-8".into());
    };
    if cmd.contains('\0') {
        return Value::Error("ERR the command name contains a NUL byte".into());
    }
    let builder = CallOptionsBuilder::new().errors_as_replies().replicate();
    let options = match mode {
        Mode::Full => builder.build(),
        Mode::Script => builder.script_mode().verify_oom().build(),
    };
    let reply: CallResult = super::lock::calling(|| context.call_ext(cmd, &options, rest));
    match reply {
        Ok(reply) => to_value(&reply),
        Err(e) => Value::Error(e.to_string()),
    }
}

/// Calls `f` with `args` as slices, without allocating for commands of up to 8 arguments
/// (an `execute()` per record made that Vec a measurable part of the call).
pub fn with_refs<R>(args: &[Vec<u8>], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    with_slices(args.len(), args.iter().map(Vec::as_slice), f)
}

/// Calls `f` with the `count` slices of `args` gathered, on the stack for up to 8.
pub fn with_slices<'a, R>(
    count: usize,
    args: impl Iterator<Item = &'a [u8]>,
    f: impl FnOnce(&[&[u8]]) -> R,
) -> R {
    const SHORT: usize = 8;
    if count <= SHORT {
        let mut refs: [&[u8]; SHORT] = [&[]; SHORT];
        let mut n = 0;
        for (r, a) in refs.iter_mut().zip(args) {
            *r = a;
            n += 1;
        }
        f(&refs[..n])
    } else {
        let refs: Vec<&[u8]> = args.collect();
        f(&refs)
    }
}

fn to_value(reply: &CallReply) -> Value {
    match reply {
        CallReply::I64(i) => Value::Int(i.to_i64()),
        CallReply::String(s) => Value::from_redis_bytes(s.as_bytes()),
        CallReply::Null(_) => Value::Nil,
        CallReply::Bool(b) => Value::Bool(b.to_bool()),
        CallReply::Double(d) => Value::Float(d.to_double()),
        CallReply::BigNumber(n) => Value::Str(n.to_string().unwrap_or_default()),
        CallReply::VerbatimString(v) => match v.as_parts() {
            Some((_, bytes)) => Value::from_redis_bytes(bytes),
            None => Value::Nil,
        },
        CallReply::Array(a) => Value::List(a.iter().map(|r| result_to_value(&r)).collect()),
        CallReply::Set(s) => Value::List(s.iter().map(|r| result_to_value(&r)).collect()),
        CallReply::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (result_to_value(&k), result_to_value(&v)))
                .collect(),
        ),
        CallReply::Unknown => Value::Nil,
    }
}

fn result_to_value(r: &CallResult) -> Value {
    match r {
        Ok(reply) => to_value(reply),
        Err(e) => Value::Error(e.to_string()),
    }
}
