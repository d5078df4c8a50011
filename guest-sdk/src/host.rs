//! What the host offers a guest while it runs (the WIT `host` interface).

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

// Inside a component the WIT imports; on a native target (`cargo test`) the same
// functions backed by the thread's `gears::testing` host, as wit-bindgen's stubs abort.
#[cfg(target_arch = "wasm32")]
use crate::__rt::bindings::redisgears::guest::host as wit;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::backend as wit;
use crate::value::{from_value, to_value};
use crate::{Error, Result};

/// Arguments longer than this are not kept between calls (a big SET value would
/// otherwise hold guest memory for good).
const KEEP_ARG: usize = 4096;

thread_local! {
    /// The buffers of the last command's arguments, reused by the next one: most
    /// commands are short, and a fresh `Vec` per argument was a good part of a call.
    static ARGS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The same for [`execute`]: the arguments end to end, and their lengths.
    static FLAT: std::cell::RefCell<(Vec<u8>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Calls `f` with the command's arguments as the WIT call wants them.
fn with_command<I, A, R>(args: I, f: impl FnOnce(&[Vec<u8>]) -> R) -> R
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    // Taken out while in use: no borrow is held across `f` or the argument conversions.
    let mut buf = ARGS.with(|a| std::mem::take(&mut *a.borrow_mut()));
    let mut n = 0;
    for arg in args {
        let arg = arg.as_ref();
        match buf.get_mut(n) {
            Some(b) => {
                b.clear();
                b.extend_from_slice(arg);
            }
            None => buf.push(arg.to_vec()),
        }
        n += 1;
    }
    let out = f(&buf[..n]);
    buf.retain(|b| b.capacity() <= KEEP_ARG);
    ARGS.with(|a| *a.borrow_mut() = buf);
    out
}

/// Writes the arguments end to end into `buf` and their lengths into `lengths`.
fn flatten<I, A>(args: I, buf: &mut Vec<u8>, lengths: &mut Vec<u32>)
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    buf.clear();
    lengths.clear();
    for arg in args {
        let arg = arg.as_ref();
        buf.extend_from_slice(arg);
        // wasm32 has no 4 GiB argument; the host refuses lengths that do not add up.
        lengths.push(u32::try_from(arg.len()).unwrap_or(u32::MAX));
    }
}

/// Runs the command through the host's `call`: one buffer in, a typed reply out.
fn call<I, A>(args: I) -> Result<wit::Reply>
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    let (mut buf, mut lengths) = FLAT.with(|f| std::mem::take(&mut *f.borrow_mut()));
    flatten(args, &mut buf, &mut lengths);
    let reply = wit::call(&buf, &lengths).map_err(Error::msg);
    if buf.capacity() > KEEP_ARG {
        buf = Vec::new();
    }
    FLAT.with(|f| *f.borrow_mut() = (buf, lengths));
    reply
}

/// A typed reply as the [`Value`] `execute` gives: a string when it is UTF-8 (its bytes
/// become the `String`, no copy), else binary.
fn reply_value(reply: wit::Reply) -> Result<Value> {
    Ok(match reply {
        wit::Reply::Nil => Value::Nil,
        wit::Reply::Int(i) => Value::from(i),
        wit::Reply::Bulk(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Value::from(text),
            Err(e) => Value::Binary(e.into_bytes()),
        },
        wit::Reply::Packed(bytes) => unpack(&bytes)?,
    })
}

pub(crate) fn unpack(bytes: &[u8]) -> Result<Value> {
    if let Some(v) = crate::unpack::value(bytes) {
        return Ok(v);
    }
    rmpv::decode::read_value(&mut &bytes[..])
        .map_err(|e| Error::msg(format!("malformed MessagePack from the host: {e}")))
}

/// Runs a Redis command and returns its reply: nil, an integer, a str (bin when not
/// UTF-8), an array, a map (RESP3 maps), `Value::Ext(1, text)` for an error element of
/// an array. An error reply is an `Err` with the error's text, so `?` passes it on.
///
/// ```no_run
/// use gears::{execute, Value};
///
/// # fn f() -> gears::Result<()> {
/// execute(["set", "k", "v"])?;
/// assert_eq!(execute(["get", "k"])?, Value::from("v"));
/// let key = String::from("k");
/// execute(vec![b"append".to_vec(), key.into_bytes(), vec![0xff]])?; // any bytes
/// # Ok(()) }
/// ```
pub fn execute<I, A>(args: I) -> Result<Value>
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    reply_value(call(args)?)
}

/// [`execute`], its reply decoded into `T` with serde (e.g. `Option<String>` for a GET,
/// `Vec<String>` for SMEMBERS, `i64` for INCR).
///
/// ```no_run
/// use gears::execute_as;
///
/// # fn f() -> gears::Result<()> {
/// let genres: Option<String> = execute_as(["hget", "movie:1", "genres"])?;
/// let n = execute_as::<i64>(["incr", "counter"])?;
/// # Ok(()) }
/// ```
pub fn execute_as<T: DeserializeOwned + 'static>(
    args: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> Result<T> {
    // A String or Option<String> moves out of the reply; anything else goes through serde.
    let reply = match crate::shortcut::take::<T>(reply_value(call(args)?)?) {
        Ok(t) => return Ok(t),
        Err(reply) => reply,
    };
    from_value(&reply).map_err(|e| {
        Error::msg(format!(
            "cannot decode the reply as {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Levels of [`log_at`].
///
/// ```
/// assert_eq!(gears::Level::Warning.as_str(), "warning");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// `debug`
    Debug,
    /// `verbose`
    Verbose,
    /// `notice` (what [`log`] writes)
    #[default]
    Notice,
    /// `warning`
    Warning,
}

impl Level {
    /// The level's name as Redis spells it.
    ///
    /// ```
    /// assert_eq!(gears::Level::Notice.as_str(), "notice");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Verbose => "verbose",
            Level::Notice => "notice",
            Level::Warning => "warning",
        }
    }
}

/// Writes a line to the Redis log at level notice.
///
/// ```no_run
/// gears::log("kitchen says hi");
/// gears::log(format!("{} keys", 3));
/// ```
pub fn log(message: impl AsRef<str>) {
    log_at(Level::Notice, message)
}

/// Writes a line to the Redis log at `level`.
///
/// ```no_run
/// use gears::{log_at, Level};
/// log_at(Level::Warning, "disk almost full");
/// ```
pub fn log_at(level: Level, message: impl AsRef<str>) {
    wit::log(level.as_str(), message.as_ref())
}

/// Writes a line to the Redis log at a level named at run time (debug, verbose, notice
/// or warning). Another name is an error and nothing is written, as Python's `log()`
/// raises. Needs a host of contract 1.1 or later.
///
/// ```no_run
/// # fn f() -> gears::Result<()> {
/// let level = gears::config_get("myapp.loglevel").unwrap_or_else(|| "notice".into());
/// gears::try_log(&level, "configured")?;
/// # Ok(()) }
/// ```
pub fn try_log(level: &str, message: impl AsRef<str>) -> Result<()> {
    wit::try_log(level, message.as_ref()).map_err(Error::msg)
}

/// A module setting (as RG.CONFIGGET shows it) or a user setting saved by RG.CONFIGSET;
/// None when there is no such setting.
///
/// ```no_run
/// let max = gears::config_get("MaxExecutions");
/// let mine = gears::config_get("myapp.threshold").unwrap_or_else(|| "10".into());
/// ```
pub fn config_get(name: &str) -> Option<String> {
    wit::config_get(name)
}

/// This shard's id (40 hex characters).
///
/// ```no_run
/// let id = gears::shard_id();
/// ```
pub fn shard_id() -> String {
    wit::shard_id()
}

/// A tag whose slot belongs to this shard, without braces (as in RedisGears 1.2): keys
/// named `name{tag}` live on this shard.
///
/// ```no_run
/// let key = format!("tmp{{{}}}", gears::hashtag());
/// ```
pub fn hashtag() -> String {
    wit::hashtag()
}

struct AtomicEnd;

impl Drop for AtomicEnd {
    fn drop(&mut self) {
        wit::atomic_end();
    }
}

/// Runs `f` holding Redis: no other client or execution runs between its commands.
/// The block ends when `f` returns, with an error too. Atomic blocks nest.
///
/// ```no_run
/// use gears::{atomic, execute_as};
///
/// # fn f() -> gears::Result<()> {
/// let n: i64 = atomic(|| {
///     execute_as::<i64>(["incr", "a"])?;
///     execute_as::<i64>(["incr", "a"])
/// })?;
/// # Ok(()) }
/// ```
pub fn atomic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    wit::atomic_begin();
    let _end = AtomicEnd;
    f()
}

/// Inside a CommandReader hook: runs the next hook of the command, or the command
/// itself, with these arguments and returns its reply. The arguments come without the
/// command's name (the hooked command is implied), like Python's `call_next(*x[1:])`.
///
/// ```no_run
/// use gears::{call_next, GearsBuilder, Mode, Register};
///
/// // HSET whook:... gets one more field; the record is [command, args...]
/// let plan = GearsBuilder::new("CommandReader")
///     .map(|record: Vec<String>| {
///         let mut args = record[1..].to_vec();
///         args.extend(["hooked".to_string(), "1".to_string()]);
///         call_next(&args)
///     })
///     .register(Register::new().hook("hset").keyprefix("whook:").mode(Mode::Sync));
/// ```
pub fn call_next<I, A>(args: I) -> Result<Value>
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    let reply = with_command(args, wit::call_next).map_err(Error::msg)?;
    unpack(&reply)
}

/// Inside a hook or a `commands(...)` registration: the reply the command's client gets
/// instead of the command's own. A str starting with `+` is a status reply, with `-` an
/// error reply; other values reply as results do (wit/ENCODING.md).
///
/// ```no_run
/// # fn f() -> gears::Result<()> {
/// gears::override_reply("+QUEUED-BY-WASM")?;
/// gears::override_reply(vec![1, 2, 3])?;
/// # Ok(()) }
/// ```
pub fn override_reply(reply: impl Serialize) -> Result<()> {
    let v = to_value(&reply)?;
    wit::override_reply(&crate::builder::encode(&v)).map_err(Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_go_end_to_end_with_their_lengths() {
        let (mut buf, mut lengths) = (vec![9u8; 3], vec![7u32]);
        flatten(["hget", "movie:1", "", "genres"], &mut buf, &mut lengths);
        assert_eq!(buf, b"hgetmovie:1genres");
        assert_eq!(lengths, [4, 7, 0, 6]);
        flatten(vec![vec![0xffu8, 0], vec![]], &mut buf, &mut lengths);
        assert_eq!(
            (buf.as_slice(), lengths.as_slice()),
            (&[0xff, 0][..], &[2, 0][..])
        );
    }

    #[test]
    fn typed_replies_are_the_values_execute_always_gave() {
        assert_eq!(reply_value(wit::Reply::Nil).ok(), Some(Value::Nil));
        assert_eq!(reply_value(wit::Reply::Int(-3)).ok(), Some(Value::from(-3)));
        assert_eq!(
            reply_value(wit::Reply::Int(7)).ok(),
            Some(Value::from(7u64))
        );
        let text = reply_value(wit::Reply::Bulk(b"OK".to_vec())).ok();
        assert_eq!(text, Some(Value::from("OK")));
        let bin = reply_value(wit::Reply::Bulk(vec![0xff, 0x00])).ok();
        assert_eq!(bin, Some(Value::Binary(vec![0xff, 0x00])));
        let mut packed = Vec::new();
        let list = Value::Array(vec![Value::from("a"), Value::Nil]);
        rmpv::encode::write_value(&mut packed, &list).unwrap_or_default();
        assert_eq!(reply_value(wit::Reply::Packed(packed)).ok(), Some(list));
        // A truncated array is an error.
        assert!(reply_value(wit::Reply::Packed(vec![0x92, 0x01])).is_err());
        // execute_as's shortcut takes the String out of a bulk reply as is.
        let v = reply_value(wit::Reply::Bulk(b"Drama".to_vec())).unwrap_or(Value::Nil);
        assert_eq!(
            crate::shortcut::take::<Option<String>>(v).ok(),
            Some(Some("Drama".into()))
        );
    }
}
