//! What a guest's Store holds: its (empty) WASI context, its limits, the clock of the
//! call in progress, and the host functions of the contract.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::redisgears::guest::{host, types};
use crate::engine::codec;
use crate::engine::value::Value;
use crate::host_api::{self, Caller};
use crate::redis::call::with_slices;
use crate::redis::lock;

/// How much of a guest's stderr is kept (the text of a panic, for the error reply).
const STDERR_KEEP: usize = 4096;

/// A host function refused a call it has no error result for: the guest call fails
/// with this text (the guest is dropped, as after any trap).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub stderr: MemoryOutputPipe,
    /// Memory cap of this instance, in bytes, and whether a growth hit it.
    pub memory_cap: usize,
    pub memory_exceeded: bool,
    /// The guest call in progress: when it started, its budget, and the time spent in
    /// host functions (waiting for Redis is not the guest's time).
    pub call_started: Instant,
    pub budget: Duration,
    pub in_host: Duration,
    /// atomic-begin calls not yet ended (released when the guest call ends).
    pub atomic_depth: u32,
    /// While describe runs: Redis may not be touched (it also runs while loading).
    pub describing: bool,
}

impl HostState {
    pub fn new(memory_cap: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_KEEP);
        // No preopened directories, no environment, no arguments, no sockets (the
        // builder's defaults deny them): a guest reaches Redis only through `host`.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_cap,
            memory_exceeded: false,
            call_started: Instant::now(),
            budget: Duration::from_millis(500),
            in_host: Duration::ZERO,
            atomic_depth: 0,
            describing: false,
        }
    }

    /// The guest's own time in the current call.
    pub fn guest_time(&self) -> Duration {
        self.call_started.elapsed().saturating_sub(self.in_host)
    }

    /// What the guest last wrote to stderr before trapping (a panic's location and
    /// message), without Rust's "note: run with RUST_BACKTRACE" hint.
    pub fn last_stderr_line(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect();
        let start = lines
            .iter()
            .rposition(|l| l.contains("panicked at"))
            .unwrap_or(lines.len().saturating_sub(1));
        let tail = lines.get(start..).unwrap_or_default().join(" ");
        (!tail.is_empty()).then_some(tail)
    }

    /// Runs `f` against Redis, with the clock of the guest stopped.
    fn with_redis<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t0 = Instant::now();
        lock::ensure_locked();
        let r = f();
        lock::after_call();
        self.in_host += t0.elapsed();
        r
    }

    /// Whether `what()` may call a command of `argc` words now.
    fn may_call(&self, what: &str, argc: usize) -> Result<(), String> {
        if self.describing {
            return Err(format!(
                "{what}() is not available while the guest is described"
            ));
        }
        if argc == 0 {
            return Err(format!("{what}() needs a command name"));
        }
        Ok(())
    }

    fn run_command(&mut self, command: Vec<Vec<u8>>, what: &str) -> Result<Vec<u8>, String> {
        self.may_call(what, command.len())?;
        let reply = if what == "call_next" {
            self.with_redis(|| host_api::call_next(Caller::Guest, command))?
        } else {
            self.with_redis(|| host_api::execute(Caller::Guest, &command))
        };
        match reply {
            Value::Error(e) => Err(e),
            v => Ok(codec::encode_one(&v)),
        }
    }

    /// `call`: the command cut out of one buffer, the reply typed where it is simple.
    fn run_flat(&mut self, args: &[u8], lengths: &[u32]) -> Result<types::Reply, String> {
        self.may_call("execute", lengths.len())?;
        let reply = with_cut(args, lengths, |command| {
            self.with_redis(|| host_api::execute_refs(Caller::Guest, command))
        })?;
        Ok(match reply {
            Value::Nil => types::Reply::Nil,
            Value::Int(i) => types::Reply::Int(i),
            Value::Str(s) | Value::Status(s) => types::Reply::Bulk(s.into_bytes()),
            Value::Bytes(b) => types::Reply::Bulk(b),
            Value::Error(e) => return Err(e),
            other => types::Reply::Packed(codec::encode_one(&other)),
        })
    }

    /// Ends atomic blocks the guest left open (it trapped, or forgot atomic-end).
    pub fn release_atomic(&mut self) {
        while self.atomic_depth > 0 {
            self.atomic_depth -= 1;
            lock::atomic_exit();
        }
    }
}

/// Calls `f` with `args` cut at `lengths`, without copying; an error when the lengths
/// do not add up to the buffer.
fn with_cut<R>(args: &[u8], lengths: &[u32], f: impl FnOnce(&[&[u8]]) -> R) -> Result<R, String> {
    let total: u64 = lengths.iter().map(|l| u64::from(*l)).sum();
    match total.cmp(&(args.len() as u64)) {
        std::cmp::Ordering::Greater => {
            return Err("execute(): the arguments' lengths exceed their buffer".into())
        }
        std::cmp::Ordering::Less => {
            return Err("execute(): the arguments' lengths fall short of their buffer".into())
        }
        std::cmp::Ordering::Equal => {}
    }
    let mut rest = args;
    let cut = lengths.iter().map(|len| {
        // The lengths add up to the buffer: each fits in what is left.
        let (arg, after) = rest.split_at_checked(*len as usize).unwrap_or((rest, &[]));
        rest = after;
        arg
    });
    Ok(with_slices(lengths.len(), cut, f))
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            // An error (not `false`) traps the guest at once, with a clear cause.
            return Err(wasmtime::Error::msg(format!(
                "guest exceeded its memory cap of {} MB (WasmMaxMemoryMB)",
                self.memory_cap >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn execute(&mut self, command: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
        self.run_command(command, "execute")
    }

    fn call(&mut self, args: Vec<u8>, lengths: Vec<u32>) -> Result<types::Reply, String> {
        self.run_flat(&args, &lengths)
    }

    fn log(&mut self, level: String, message: String) -> wasmtime::Result<()> {
        host_api::log(&level, &message).map_err(|e| Refused(format!("log(): {e}")).into())
    }

    fn try_log(&mut self, level: String, message: String) -> Result<(), String> {
        host_api::log(&level, &message)
    }

    fn config_get(&mut self, name: String) -> Option<String> {
        host_api::config_get(&name)
    }

    fn shard_id(&mut self) -> String {
        host_api::shard_id()
    }

    fn hashtag(&mut self) -> String {
        host_api::hashtag()
    }

    fn atomic_begin(&mut self) {
        if self.describing {
            return;
        }
        let t0 = Instant::now();
        lock::atomic_enter();
        self.in_host += t0.elapsed();
        self.atomic_depth += 1;
    }

    fn atomic_end(&mut self) {
        if self.atomic_depth > 0 {
            self.atomic_depth -= 1;
            lock::atomic_exit();
        }
    }

    fn call_next(&mut self, command: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
        self.run_command(command, "call_next")
    }

    fn override_reply(&mut self, reply: Vec<u8>) -> Result<(), String> {
        let value = codec::decode(&reply).map_err(|e| format!("override_reply(): {e}"))?;
        host_api::override_reply(value)
    }
}

#[cfg(test)]
mod tests {
    use super::with_cut;

    fn cut(args: &[u8], lengths: &[u32]) -> Result<Vec<Vec<u8>>, String> {
        with_cut(args, lengths, |c| c.iter().map(|a| a.to_vec()).collect())
    }

    #[test]
    fn a_command_is_cut_out_of_its_buffer() {
        let got = cut(b"hgetmovie:1genres", &[4, 7, 6]);
        assert_eq!(
            got,
            Ok(vec![
                b"hget".to_vec(),
                b"movie:1".to_vec(),
                b"genres".to_vec()
            ])
        );
        assert_eq!(cut(b"", &[]), Ok(vec![]));
        assert_eq!(
            cut(b"ab", &[0, 2, 0]),
            Ok(vec![vec![], b"ab".to_vec(), vec![]])
        );
        // More arguments than the short array holds.
        let many: Vec<u32> = vec![1; 20];
        assert_eq!(cut(&[b'x'; 20], &many).map(|c| c.len()), Ok(20));
    }

    #[test]
    fn lengths_that_do_not_add_up_are_refused() {
        assert!(cut(b"abc", &[2]).is_err_and(|e| e.contains("fall short")));
        assert!(cut(b"abc", &[2, 2]).is_err_and(|e| e.contains("exceed")));
        assert!(cut(b"abc", &[u32::MAX]).is_err());
    }
}
