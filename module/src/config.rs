//! The module's configuration: load arguments, RG.CONFIGGET / RG.CONFIGSET.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// A known configuration entry.
pub struct Entry {
    pub name: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    /// Settable with RG.CONFIGSET (else only at load).
    pub runtime: bool,
}

macro_rules! entries {
    ($($key:ident = $name:literal, $default:expr, $min:expr, $max:expr, $runtime:expr;)*) => {
        /// The known entries, by index.
        #[derive(Clone, Copy, Debug)]
        #[allow(clippy::enum_variant_names)]
        pub enum Key { $($key),* }
        pub const ENTRIES: &[Entry] = &[
            $(Entry { name: $name, default: $default, min: $min, max: $max, runtime: $runtime }),*
        ];
    };
}

entries! {
    MaxExecutions = "MaxExecutions", 1000, 1, i64::MAX, true;
    MaxExecutionsPerRegistration = "MaxExecutionsPerRegistration", 100, 0, i64::MAX, true;
    // Results kept by finished executions, in bytes (Value::approx_size); 256 MB holds
    // about 6 million short records and stays well below a usual maxmemory.
    MaxResultsBytes = "MaxResultsBytes", 256 << 20, 0, i64::MAX, true;
    ProfileExecutions = "ProfileExecutions", 0, 0, 1, true;
    PythonAttemptTraceback = "PythonAttemptTraceback", 1, 0, 1, true;
    ExecutionThreads = "ExecutionThreads", 3, 1, 256, false;
    ExecutionMaxIdleTime = "ExecutionMaxIdleTime", 5000, 1, i64::MAX, true;
    SendMsgRetries = "SendMsgRetries", 3, 0, i64::MAX, true;
    BatchSize = "BatchSize", 512, 1, 1_000_000, true;
    LockSliceMicros = "LockSliceMicros", 1000, 1, 10_000_000, true;
    MaxPendingEvents = "MaxPendingEvents", 100000, 1, i64::MAX, true;
    PythonEnabled = "PythonEnabled", 1, 0, 1, false;
    // One guest call handles one batch or one describe: 10 s is 20x the default and keeps
    // a spinning upload's describe (which holds its client) bounded.
    WasmMaxCallMillis = "WasmMaxCallMillis", 500, 1, 10_000, true;
    WasmMaxMemoryMB = "WasmMaxMemoryMB", 64, 1, 65536, true;
    PythonMaxLockMillis = "PythonMaxLockMillis", 5000, 10, 600_000, true;
}

static VALUES: [AtomicI64; ENTRIES.len()] = [const { AtomicI64::new(0) }; ENTRIES.len()];

/// Load-only text entries RG.CONFIGGET does not reveal: how the shard links authenticate
/// (a dedicated ACL user instead of masteruser / masterauth, and a secret every frame is
/// signed with).
pub const CLUSTER_USER: &str = "ClusterUser";
pub const CLUSTER_PASSWORD: &str = "ClusterPassword";
pub const CLUSTER_SECRET: &str = "ClusterSecret";
const SECRETS: &[&str] = &[CLUSTER_USER, CLUSTER_PASSWORD, CLUSTER_SECRET];
static SECRET_VALUES: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// A load-only text entry (one of SECRETS), if it was given.
pub fn secret(name: &str) -> Option<String> {
    SECRET_VALUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(name).cloned())
        .filter(|v| !v.is_empty())
}

fn secret_name(name: &str) -> Option<&'static str> {
    SECRETS
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(name))
}
static EXTRA: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// Sets every entry to its default (at load, before the load arguments).
pub fn reset() {
    for (slot, entry) in VALUES.iter().zip(ENTRIES) {
        slot.store(entry.default, Ordering::Relaxed);
    }
}

pub fn get(key: Key) -> i64 {
    VALUES[key as usize].load(Ordering::Relaxed)
}

/// The value of the entry at `index` of ENTRIES (0 for none).
pub fn get_index(index: usize) -> i64 {
    VALUES.get(index).map_or(0, |v| v.load(Ordering::Relaxed))
}

fn find(name: &str) -> Option<usize> {
    ENTRIES
        .iter()
        .position(|e| e.name.eq_ignore_ascii_case(name))
}

fn extra<R>(f: impl FnOnce(&mut HashMap<String, String>) -> R) -> R {
    let mut guard = EXTRA.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// The value of a known entry or a user entry, as text.
pub fn get_by_name(name: &str) -> Option<String> {
    if let Some(secret_name) = secret_name(name) {
        return Some(
            if secret(secret_name).is_some() {
                "(set)"
            } else {
                ""
            }
            .into(),
        );
    }
    match find(name) {
        Some(i) => Some(VALUES[i].load(Ordering::Relaxed).to_string()),
        None => extra(|m| m.get(&name.to_ascii_lowercase()).cloned()),
    }
}

/// What a successful set did.
#[derive(Debug, PartialEq)]
pub enum Set {
    Known,
    Extra,
}

/// Sets an entry from text. `at_load` allows the load-only entries.
pub fn set_by_name(name: &str, value: &str, at_load: bool) -> Result<Set, String> {
    if let Some(secret_name) = secret_name(name) {
        if !at_load {
            return Err(format!("{secret_name} can only be set at load time"));
        }
        SECRET_VALUES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(secret_name.to_string(), value.to_string());
        return Ok(Set::Known);
    }
    let Some(i) = find(name) else {
        extra(|m| m.insert(name.to_ascii_lowercase(), value.to_string()));
        return Ok(Set::Extra);
    };
    let entry = &ENTRIES[i];
    if !at_load && !entry.runtime {
        return Err(format!("{} can only be set at load time", entry.name));
    }
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{} must be an integer, got '{value}'", entry.name))?;
    if n < entry.min || n > entry.max {
        return Err(format!(
            "{} must be between {} and {}, got {n}",
            entry.name, entry.min, entry.max
        ));
    }
    VALUES[i].store(n, Ordering::Relaxed);
    if matches!(i, x if x == Key::LockSliceMicros as usize) {
        crate::redis::lock::set_slice_micros(n as u64);
    }
    Ok(Set::Known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extra_and_refused() {
        reset();
        assert_eq!(get_by_name("batchsize").as_deref(), Some("512"));
        assert_eq!(set_by_name("BatchSize", "100", false), Ok(Set::Known));
        assert_eq!(get(Key::BatchSize), 100);
        assert!(set_by_name("BatchSize", "x", false).is_err());
        assert!(set_by_name("BatchSize", "0", false).is_err());
        assert!(set_by_name("ExecutionThreads", "4", false).is_err());
        assert_eq!(set_by_name("ExecutionThreads", "4", true), Ok(Set::Known));
        assert_eq!(set_by_name("MyKey", "v", false), Ok(Set::Extra));
        assert_eq!(get_by_name("mykey").as_deref(), Some("v"));
        reset();
    }
}
