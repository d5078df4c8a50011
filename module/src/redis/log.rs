//! Lines for the operator in Redis's log, never a flood.
//!
//! A kind of line (its `key`: a registration's failures, a guest's traps...) is written at
//! most once per `INTERVAL`; lines of that kind held back meanwhile are counted, and the
//! next one written says how many there were. Safe from any thread: Redis's log call
//! needs no context and takes no lock of the server's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis_module::logging::{log, RedisLogLevel};

/// How often one kind of line may be written.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// At most this many kinds are remembered; beyond, the oldest are forgotten.
const KINDS: usize = 1024;

#[derive(Clone, Copy)]
struct Kind {
    last: Instant,
    held: u64,
}

fn kinds() -> &'static Mutex<HashMap<String, Kind>> {
    static KINDS_SEEN: OnceLock<Mutex<HashMap<String, Kind>>> = OnceLock::new();
    KINDS_SEEN.get_or_init(Default::default)
}

/// Whether a line of `key` may be written now, and how many were held back before it.
fn admit(key: &str, now: Instant) -> Option<u64> {
    let mut kinds = kinds().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(kind) = kinds.get_mut(key) {
        if now.duration_since(kind.last) < INTERVAL {
            kind.held += 1;
            return None;
        }
        let held = kind.held;
        *kind = Kind { last: now, held: 0 };
        return Some(held);
    }
    if kinds.len() >= KINDS {
        if let Some(oldest) = kinds
            .iter()
            .min_by_key(|(_, k)| k.last)
            .map(|(k, _)| k.clone())
        {
            kinds.remove(&oldest);
        }
    }
    kinds.insert(key.to_string(), Kind { last: now, held: 0 });
    Some(0)
}

fn write(level: RedisLogLevel, key: &str, line: impl FnOnce() -> String) {
    let Some(held) = admit(key, Instant::now()) else {
        return;
    };
    let line = line();
    match held {
        0 => log(level, format!("gears: {line}")),
        n => log(
            level,
            format!(
                "gears: {line} ({n} more like it in the last {}s)",
                INTERVAL.as_secs()
            ),
        ),
    }
}

/// A warning of kind `key`, rate-limited; `line` is only made when it is written.
pub fn warning(key: &str, line: impl FnOnce() -> String) {
    write(RedisLogLevel::Warning, key, line)
}

/// A notice of kind `key`, rate-limited; `line` is only made when it is written.
pub fn notice(key: &str, line: impl FnOnce() -> String) {
    write(RedisLogLevel::Notice, key, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_of_those_held_back() {
        let t0 = Instant::now();
        let key = "test: one kind";
        assert_eq!(admit(key, t0), Some(0));
        for i in 1..=5 {
            assert_eq!(admit(key, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(admit("test: another kind", t0), Some(0));
        assert_eq!(admit(key, t0 + INTERVAL), Some(5));
        assert_eq!(admit(key, t0 + INTERVAL + Duration::from_millis(1)), None);
    }
}
