//! StreamReader registrations: every stream whose name matches the prefix is read through
//! a consumer group of the registration (created at id 0, so messages already there are
//! processed too). A batch runs when `batch` messages wait or `duration` ms passed; its
//! messages are acknowledged (and trimmed) after the execution. After a restart the
//! group's pending messages (delivered, never acknowledged) are read again first, so no
//! message is lost; in sync mode the reads, the writes of the steps and the XACK happen
//! inside the XADD that caused them, so they reach the AOF together and none runs twice.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use redis_module::{Context, ContextFlags};

use crate::config::{self, Key};
use crate::engine::execution::{Execution, Status};
use crate::engine::reader::Reader;
use crate::engine::registration::{Registration, Trigger};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::readers::redis_call;
use crate::readers::stream::{matching_streams, message_record};
use crate::redis::lock;

const CONSUMER: &str = "gears";

/// Sync batches that start one another inline (each from the end of the last) before the
/// rest is left to the sweep timer: a stream its own batches write to would otherwise
/// keep its XADD, and Redis, busy forever (and overflow the stack).
const MAX_INLINE_BATCHES: u32 = 8;

thread_local! {
    /// Batches running inline on this thread, one inside the other.
    static INLINE_BATCHES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One inline batch deeper while it lives.
struct InlineBatch;

impl InlineBatch {
    fn enter() -> InlineBatch {
        INLINE_BATCHES.with(|n| n.set(n.get() + 1));
        InlineBatch
    }
}

impl Drop for InlineBatch {
    fn drop(&mut self) {
        INLINE_BATCHES.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OnFailed {
    Continue,
    Abort,
    Retry,
}

impl OnFailed {
    pub fn parse(s: &str) -> Option<OnFailed> {
        match s.to_ascii_lowercase().as_str() {
            "continue" => Some(OnFailed::Continue),
            "abort" => Some(OnFailed::Abort),
            "retry" => Some(OnFailed::Retry),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            OnFailed::Continue => "continue",
            OnFailed::Abort => "abort",
            OnFailed::Retry => "retry",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Health {
    Ok,
    WaitingForRetry,
    Aborted,
}

#[derive(Default)]
struct StreamState {
    /// Messages added since the last batch started.
    waiting: u64,
    first_waiting: Option<Instant>,
    /// A batch of this stream is running.
    busy: bool,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Lag {
    last_ms: u64,
    total_ms: u64,
    count: u64,
}

pub struct StreamTrigger {
    pub prefix: String,
    pub batch: u64,
    pub duration_ms: u64,
    pub on_failed: OnFailed,
    pub retry_interval_s: u64,
    pub trim: bool,
    streams: Mutex<HashMap<String, StreamState>>,
    health: Mutex<Health>,
    lag: Mutex<Lag>,
    /// The streams already in the keyspace were looked at (done once on a primary).
    scanned: AtomicBool,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamTrigger {
    pub fn new(
        prefix: String,
        batch: u64,
        duration_ms: u64,
        on_failed: OnFailed,
        retry_interval_s: u64,
        trim: bool,
    ) -> Self {
        StreamTrigger {
            prefix,
            batch: batch.max(1),
            duration_ms,
            on_failed,
            retry_interval_s,
            trim,
            streams: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::Ok),
            lag: Mutex::new(Lag::default()),
            scanned: AtomicBool::new(false),
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        super::prefix_matches(&self.prefix, key)
    }
}

impl Trigger for StreamTrigger {
    fn reader(&self) -> &'static str {
        "StreamReader"
    }

    fn args(&self) -> Vec<(String, Value)> {
        vec![
            ("regex".into(), Value::str(self.prefix.as_str())),
            ("batchSize".into(), Value::Int(self.batch as i64)),
            ("durationMS".into(), Value::Int(self.duration_ms as i64)),
            ("onFailedPolicy".into(), Value::str(self.on_failed.as_str())),
            (
                "onFailedRetryInterval".into(),
                Value::Int(self.retry_interval_s as i64),
            ),
            ("trimStream".into(), Value::Int(self.trim as i64)),
        ]
    }

    fn extra(&self, paused: bool) -> Vec<(String, Value)> {
        let lag = guard(&self.lag);
        let avg = if lag.count > 0 {
            lag.total_ms as f64 / lag.count as f64
        } else {
            0.0
        };
        let status = match (*guard(&self.health), paused) {
            (Health::Aborted, _) => "ABORTED",
            (_, true) => "PAUSED",
            (Health::WaitingForRetry, _) => "WAITING_FOR_RETRY_ON_FAILURE",
            (Health::Ok, _) => "OK",
        };
        vec![
            ("lastEstimatedLagMS".into(), Value::Int(lag.last_ms as i64)),
            ("avgEstimatedLagMS".into(), Value::Float(avg)),
            ("status".into(), Value::str(status)),
        ]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn trigger_of(reg: &Registration) -> Option<&StreamTrigger> {
    reg.trigger.as_any().downcast_ref::<StreamTrigger>()
}

fn group_of(reg: &Registration) -> String {
    format!("__gears_{}", reg.id)
}

/// A stream message id as (milliseconds, sequence).
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Reads the registration's messages of one stream: pending ones first, then new ones.
struct GroupReader {
    key: String,
    group: String,
    /// Ids read (acknowledged once the execution is over).
    ids: Arc<Mutex<Vec<String>>>,
    /// While reading pending messages: the id after which to read ("0" at first); None
    /// once they are done and new messages (">") are read.
    pending_after: Option<String>,
    left: usize,
    /// Whether everything available was read.
    exhausted: Arc<AtomicBool>,
}

fn ensure_group(key: &str, group: &str) -> Result<()> {
    match redis_call(&[
        b"XGROUP",
        b"CREATE",
        key.as_bytes(),
        group.as_bytes(),
        b"0",
        b"MKSTREAM",
    ]) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

impl GroupReader {
    fn read(&self, count: usize) -> Result<Vec<Value>> {
        let count = count.to_string();
        let args: [&[u8]; 9] = [
            b"XREADGROUP",
            b"GROUP",
            self.group.as_bytes(),
            CONSUMER.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"STREAMS",
            self.key.as_bytes(),
            self.pending_after.as_deref().unwrap_or(">").as_bytes(),
        ];
        let reply = match redis_call(&args) {
            Err(e) if e.to_string().contains("NOGROUP") => {
                ensure_group(&self.key, &self.group)?;
                redis_call(&args)?
            }
            other => other?,
        };
        // [[key, [entries...]]] or nil
        let Value::List(mut streams) = reply else {
            return Ok(Vec::new());
        };
        let Some(Value::List(mut stream)) = streams.pop() else {
            return Ok(Vec::new());
        };
        match stream.pop() {
            Some(Value::List(entries)) => Ok(entries),
            _ => Ok(Vec::new()),
        }
    }
}

impl Reader for GroupReader {
    fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Value>>> {
        while self.left > 0 {
            let want = max.min(self.left).max(1);
            let entries = self.read(want)?;
            if entries.is_empty() {
                if self.pending_after.is_some() {
                    self.pending_after = None;
                    continue;
                }
                self.exhausted.store(true, Ordering::Release);
                return Ok(None);
            }
            let mut out = Vec::with_capacity(entries.len());
            let mut ids = guard(&self.ids);
            for entry in entries {
                // A pending message deleted since reads as [id, nil]: acknowledge it only.
                let id = match &entry {
                    Value::List(parts) => match parts.first() {
                        Some(Value::Str(id)) => id.clone(),
                        _ => continue,
                    },
                    _ => continue,
                };
                if self.pending_after.is_some() {
                    self.pending_after = Some(id.clone());
                }
                ids.push(id);
                if let Some((_, record)) = message_record(&self.key, entry) {
                    out.push(record);
                }
            }
            self.left = self.left.saturating_sub(ids.len().max(1));
            drop(ids);
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }
}

/// A message was added to `key` (inside the XADD). Without `start` it is only counted:
/// the sweep timer starts the batch when one is due.
pub fn on_message(reg: &Arc<Registration>, key: &[u8], start: bool) {
    let Some(trigger) = trigger_of(reg) else {
        return;
    };
    // A stream registration consumes the streams of the database it was registered in.
    if !trigger.matches(key) || lock::current_db() != reg.run_as.db {
        return;
    }
    let key = String::from_utf8_lossy(key).into_owned();
    let first_sight = {
        let mut streams = guard(&trigger.streams);
        let first_sight = !streams.contains_key(&key);
        let st = streams.entry(key.clone()).or_default();
        st.waiting += 1;
        st.first_waiting.get_or_insert_with(Instant::now);
        first_sight
    };
    if first_sight {
        // The group exists from the first message on, so trimming for other groups
        // keeps what this one (even paused) has not read yet.
        if let Err(e) = ensure_group(&key, &group_of(reg)) {
            redis_module::logging::log_warning(format!(
                "gears: creating the group of {key}: {e:#}"
            ));
        }
    }
    if start {
        maybe_process(reg, &key, false);
    }
}

/// Starts a batch of `key` unless one runs, the registration waits, or (without
/// `force`) fewer than `batch` messages wait.
fn maybe_process(reg: &Arc<Registration>, key: &str, force: bool) {
    let Some(trigger) = trigger_of(reg) else {
        return;
    };
    if reg.is_paused() || *guard(&trigger.health) != Health::Ok {
        return;
    }
    {
        let mut streams = guard(&trigger.streams);
        let st = streams.entry(key.to_string()).or_default();
        if st.busy || (!force && st.waiting < trigger.batch) {
            return;
        }
        st.busy = true;
        st.waiting = 0;
        st.first_waiting = None;
    }
    let ids = Arc::new(Mutex::new(Vec::new()));
    let exhausted = Arc::new(AtomicBool::new(false));
    let limit = (trigger.batch as usize).max(config::get(Key::BatchSize).max(1) as usize);
    let reader = GroupReader {
        key: key.to_string(),
        group: group_of(reg),
        ids: ids.clone(),
        pending_after: Some("0".into()),
        left: limit,
        exhausted: exhausted.clone(),
    };
    let owner = Arc::downgrade(reg);
    let stream = key.to_string();
    // Counts only batches that run here: an async one's end comes on a worker.
    let _inline = InlineBatch::enter();
    // What a batch writes is in its registration's chain, whoever started it (an event, or
    // the sweep timer): its own messages only count. (Inside the callback a running batch
    // is also `busy`; a post-notification job runs when the batch is over.)
    let _firing = super::event_chain::firing(reg);
    super::fire_then(
        reg,
        Box::new(reader),
        Some(Box::new(move |exec: &Execution| {
            batch_done(owner, stream, ids, exhausted, exec)
        })),
        None,
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn batch_done(
    owner: Weak<Registration>,
    key: String,
    ids: Arc<Mutex<Vec<String>>>,
    exhausted: Arc<AtomicBool>,
    exec: &Execution,
) {
    let Some(reg) = owner.upgrade() else { return };
    let Some(trigger) = trigger_of(&reg) else {
        return;
    };
    let _db = lock::use_db(reg.run_as.db);
    let (failed, aborted, pause) = {
        let st = exec.state();
        (
            !st.errors.is_empty() || st.status == Status::Aborted,
            st.status == Status::Aborted,
            // RedisGears 1.2: a step that raises flat_error('PAUSE ...') pauses its
            // registration on this shard; the batch waits, unacknowledged, for the unpause.
            st.errors.iter().any(|e| e.starts_with("PAUSE"))
                // A batch aborted by a pause waits for the unpause too.
                || (st.status == Status::Aborted && reg.is_paused()),
        )
    };
    let ids = std::mem::take(&mut *guard(&ids));
    let acknowledge = !pause && (!failed || (trigger.on_failed == OnFailed::Continue && !aborted));
    if pause {
        reg.set_paused(true);
        guard(&trigger.streams)
            .entry(key.clone())
            .or_default()
            .retry_at = Some(Instant::now());
    } else if acknowledge {
        if let Err(e) = ack(&reg, trigger, &key, &ids) {
            redis_module::logging::log_warning(format!("gears: acknowledging {key}: {e:#}"));
        }
    } else {
        let mut health = guard(&trigger.health);
        match trigger.on_failed {
            OnFailed::Abort => *health = Health::Aborted,
            _ => {
                *health = Health::WaitingForRetry;
                let at = Instant::now() + Duration::from_secs(trigger.retry_interval_s);
                guard(&trigger.streams)
                    .entry(key.clone())
                    .or_default()
                    .retry_at = Some(at);
            }
        }
    }
    let more = {
        let mut streams = guard(&trigger.streams);
        let st = streams.entry(key.clone()).or_default();
        st.busy = false;
        let more =
            st.waiting >= trigger.batch || (acknowledge && !exhausted.load(Ordering::Acquire));
        if more && INLINE_BATCHES.with(|n| n.get()) >= MAX_INLINE_BATCHES {
            // Due at the next sweep.
            st.waiting = st.waiting.max(trigger.batch);
            false
        } else {
            more
        }
    };
    if more {
        maybe_process(&reg, &key, true);
    }
}

fn ack(reg: &Registration, trigger: &StreamTrigger, key: &str, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        // Nothing read, but after a restart the AOF may hold a message whose XADD came
        // after its own processing (Redis propagates a command after the writes of its
        // notifications): trimming removes what is already done.
        return if trigger.trim { trim(key) } else { Ok(()) };
    }
    let group = group_of(reg);
    let mut args: Vec<&[u8]> = vec![b"XACK", key.as_bytes(), group.as_bytes()];
    args.extend(ids.iter().map(|id| id.as_bytes()));
    redis_call(&args)?;
    let now = now_ms();
    {
        let mut lag = guard(&trigger.lag);
        for id in ids {
            if let Some((ms, _)) = parse_id(id) {
                let l = now.saturating_sub(ms);
                lag.last_ms = l;
                lag.total_ms += l;
                lag.count += 1;
            }
        }
    }
    if trigger.trim {
        trim(key)?;
    }
    Ok(())
}

/// Removes the messages every consumer group of the stream is done with.
fn trim(key: &str) -> Result<()> {
    let Value::List(groups) = redis_call(&[b"XINFO", b"GROUPS", key.as_bytes()])? else {
        return Ok(());
    };
    let mut keep_from: Option<(u64, u64)> = None;
    for group in groups {
        let fields = match group {
            Value::List(flat) => crate::readers::keys::pairs(flat),
            other => other,
        };
        let name = match fields.get("name") {
            Some(Value::Str(n)) => n.clone(),
            _ => continue,
        };
        let pending = matches!(fields.get("pending"), Some(Value::Int(n)) if *n > 0);
        let first_needed = if pending {
            match redis_call(&[b"XPENDING", key.as_bytes(), name.as_bytes()])? {
                Value::List(summary) => match summary.get(1) {
                    Some(Value::Str(id)) => parse_id(id),
                    _ => None,
                },
                _ => None,
            }
        } else {
            match fields.get("last-delivered-id") {
                Some(Value::Str(id)) => parse_id(id).map(|(ms, seq)| (ms, seq + 1)),
                _ => None,
            }
        };
        let Some(first) = first_needed else {
            return Ok(());
        };
        keep_from = Some(keep_from.map_or(first, |k| k.min(first)));
    }
    if let Some((ms, seq)) = keep_from {
        let min = format!("{ms}-{seq}");
        redis_call(&[b"XTRIM", key.as_bytes(), b"MINID", min.as_bytes()])?;
    }
    Ok(())
}

fn sweep(reg: &Arc<Registration>, trigger: &StreamTrigger) {
    if !trigger.scanned.swap(true, Ordering::AcqRel) {
        match matching_streams(&trigger.prefix) {
            // Streams seen through events already follow the batch rule; the others hold
            // messages from before (the registration, or a restart): process them now.
            Ok(keys) => {
                let unseen: Vec<String> = {
                    let streams = guard(&trigger.streams);
                    keys.into_iter()
                        .filter(|k| !streams.contains_key(k))
                        .collect()
                };
                for k in &unseen {
                    if let Err(e) = ensure_group(k, &group_of(reg)) {
                        redis_module::logging::log_warning(format!(
                            "gears: creating the group of {k}: {e:#}"
                        ));
                    }
                    guard(&trigger.streams).entry(k.clone()).or_default();
                    maybe_process(reg, k, true);
                }
            }
            Err(e) => {
                trigger.scanned.store(false, Ordering::Release);
                redis_module::logging::log_warning(format!("gears: looking for streams: {e:#}"));
            }
        }
    }
    if reg.is_paused() {
        // Batches due (retries, those a pause held back) wait for the unpause.
        return;
    }
    let now = Instant::now();
    let mut due = Vec::new();
    {
        let mut streams = guard(&trigger.streams);
        let mut health = guard(&trigger.health);
        for (key, st) in streams.iter_mut() {
            let retry = match *health {
                Health::WaitingForRetry | Health::Ok => st.retry_at.is_some_and(|t| now >= t),
                _ => false,
            };
            if retry {
                st.retry_at = None;
                *health = Health::Ok;
                due.push(key.clone());
            } else if st.waiting >= trigger.batch
                || (trigger.duration_ms > 0
                    && st.first_waiting.is_some_and(|t| {
                        now.duration_since(t).as_millis() as u64 >= trigger.duration_ms
                    }))
            {
                due.push(key.clone());
            }
        }
    }
    for key in due {
        maybe_process(reg, &key, true);
    }
}

fn on_timer(ctx: &Context, owner: Weak<Registration>) {
    let Some(reg) = owner.upgrade() else { return };
    if globals()
        .registrations
        .get(&reg.id)
        .is_none_or(|r| !Arc::ptr_eq(&r, &reg))
    {
        return;
    }
    let Some(trigger) = trigger_of(&reg) else {
        return;
    };
    let flags = ctx.get_flags();
    if flags.contains(ContextFlags::MASTER) && !flags.contains(ContextFlags::LOADING) {
        let _db = lock::use_db(reg.run_as.db);
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sweep(&reg, trigger)));
        if caught.is_err() {
            ctx.log_warning("gears: a stream sweep panicked");
        }
    }
    arm(ctx, &reg, trigger);
}

fn arm(ctx: &Context, reg: &Arc<Registration>, trigger: &StreamTrigger) {
    let every = if trigger.duration_ms > 0 {
        trigger.duration_ms.min(100)
    } else {
        100
    };
    ctx.create_timer(
        Duration::from_millis(every.max(1)),
        on_timer,
        Arc::downgrade(reg),
    );
}

/// Starts the sweep timer of a stream registration (main thread): it looks at the
/// streams already there, fires `duration` batches and retries.
pub fn start(reg: &Arc<Registration>) {
    if let Some(trigger) = trigger_of(reg) {
        arm(&lock::context(), reg, trigger);
    }
}
