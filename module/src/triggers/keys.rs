//! KeysReader registrations: keyspace events, subscribed internally (users never set
//! notify-keyspace-events).

use std::any::Any;
use std::sync::Arc;

use crate::engine::execution::Execution;
use crate::engine::reader::Reader;
use crate::engine::registration::{Registration, Trigger};
use crate::engine::value::Value;
use crate::globals::globals;
use crate::readers::keys::read_value;

use super::post_job::{self, Action, Deferred};

pub struct KeysTrigger {
    /// A prefix when it ends with '*', else the exact key name.
    pub prefix: String,
    pub event_types: Option<Vec<String>>,
    pub key_types: Option<Vec<String>>,
    pub read_value: bool,
    /// Only events caused by these commands, with the calling client held until done.
    pub commands: Option<Vec<String>>,
}

impl KeysTrigger {
    fn matches_key(&self, key: &[u8]) -> bool {
        super::prefix_matches(&self.prefix, key)
    }

    /// Key misses only reach registrations that list 'keymiss': reading a missing key
    /// raises one, so a registration on every event would trigger itself forever.
    fn matches_event(&self, event: &str) -> bool {
        match &self.event_types {
            Some(types) => types.iter().any(|t| t.eq_ignore_ascii_case(event)),
            None => event != "keymiss",
        }
    }
}

fn list(items: &Option<Vec<String>>) -> Value {
    match items {
        Some(items) => Value::List(items.iter().map(|s| Value::str(s.as_str())).collect()),
        None => Value::Nil,
    }
}

impl Trigger for KeysTrigger {
    fn reader(&self) -> &'static str {
        "KeysReader"
    }

    fn args(&self) -> Vec<(String, Value)> {
        vec![
            ("regex".into(), Value::str(self.prefix.as_str())),
            ("eventTypes".into(), list(&self.event_types)),
            ("keyTypes".into(), list(&self.key_types)),
            ("readValue".into(), Value::Int(self.read_value as i64)),
            ("commands".into(), list(&self.commands)),
        ]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The one record of a keyspace event, read when the execution starts.
struct EventReader {
    key: Option<String>,
    event: String,
    read_value: bool,
}

impl EventReader {
    /// The record, read now.
    fn record(key: &str, event: &str, with_value: bool) -> anyhow::Result<Value> {
        let key_value = (Value::str("key"), Value::str(key));
        let event_name = (Value::str("event"), Value::str(event));
        if !with_value {
            return Ok(Value::Map(vec![key_value, event_name]));
        }
        // A missed key has no value; reading it would raise another keymiss.
        let read = if event == "keymiss" {
            None
        } else {
            read_value(key)?
        };
        let (type_name, value) = read.unwrap_or_else(|| ("empty".into(), Value::Nil));
        Ok(Value::Map(vec![
            key_value,
            (Value::str("value"), value),
            (Value::str("type"), Value::Str(type_name)),
            event_name,
        ]))
    }
}

impl Reader for EventReader {
    fn next_batch(&mut self, _max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        let Some(key) = self.key.take() else {
            return Ok(None);
        };
        Self::record(&key, &self.event, self.read_value).map(|r| Some(vec![r]))
    }
}

/// The record of an event read in the notification callback, for a run in a
/// post-notification job (`post_job.rs`): the value its event wrote, not what the rest of
/// the command or transaction made of it.
struct ReadyReader(Option<Result<Value, String>>);

impl Reader for ReadyReader {
    fn next_batch(&mut self, _max: usize) -> anyhow::Result<Option<Vec<Value>>> {
        match self.0.take() {
            None => Ok(None),
            Some(Ok(record)) => Ok(Some(vec![record])),
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
        }
    }
}

/// The type of a key as TYPE names it ("none" when missing).
fn key_type(key: &str) -> TypeName {
    match crate::readers::redis_call(&[b"TYPE", key.as_bytes()]) {
        Ok(Value::Str(t)) => TypeName(t),
        _ => TypeName("none".into()),
    }
}

/// A TYPE reply: a core type's name or a module type's own name (`ReJSON-RL`).
struct TypeName(String);

impl TypeName {
    /// What keyTypes names it by: a core type by its name, any module's type as `module`
    /// (RedisGears 1.2 filters by the module API's key type, which has one for them all).
    fn class(&self) -> &str {
        match self.0.as_str() {
            core @ ("string" | "list" | "set" | "zset" | "hash" | "stream" | "none") => core,
            _ => "module",
        }
    }
}

/// Starts the registrations a keyspace event of database `db` matches (under the Redis
/// lock, from the notification callback: `nested.rs`). Registrations whose runs raised the
/// event do not fire again; a stream registration among them only counts the message. A
/// `nested` event (written by a run inside the callback) does not fire registrations with
/// `commands=`: those are about what the client's command itself did.
///
/// Where sync registrations run in post-notification jobs (`post_job.rs`), theirs are not
/// started here but returned, their records read now, for the caller's job.
pub fn dispatch(event: &str, key: &[u8], db: i32, nested: bool) -> Vec<Deferred> {
    let _db = super::event_db(db);
    let registrations = globals().registrations.list();
    let key_text = String::from_utf8_lossy(key);
    let mut type_of_key: Option<TypeName> = None;
    let mut records: [Option<Result<Value, String>>; 2] = [None, None];
    let mut deferred = Vec::new();
    for reg in registrations {
        let own = super::event_chain::in_chain(&reg);
        if event == "xadd" && reg.trigger.reader() == "StreamReader" {
            if post_job::defers(&reg) {
                let action = Action::Message { start: !own };
                deferred.push(Deferred { reg, action });
                continue;
            }
            let _firing = super::event_chain::firing(&reg);
            super::stream::on_message(&reg, key, !own);
            continue;
        }
        let Some(trigger) = reg.trigger.as_any().downcast_ref::<KeysTrigger>() else {
            continue;
        };
        if own || !takes(&reg, trigger, event, key) {
            continue;
        }
        if let Some(types) = &trigger.key_types {
            let t = type_of_key.get_or_insert_with(|| key_type(&key_text));
            if !types.iter().any(|k| k.eq_ignore_ascii_case(t.class())) {
                continue;
            }
        }
        if let Some(commands) = &trigger.commands {
            if nested {
                continue;
            }
            let caused_by = super::hooks::current_command();
            if !caused_by.is_some_and(|c| commands.iter().any(|k| k.eq_ignore_ascii_case(&c))) {
                continue;
            }
        } else if post_job::defers(&reg) {
            let record = records[trigger.read_value as usize].get_or_insert_with(|| {
                EventReader::record(&key_text, event, trigger.read_value)
                    .map_err(|e| format!("{e:#}"))
            });
            let action = Action::Fire(Box::new(ReadyReader(Some(record.clone()))));
            deferred.push(Deferred { reg, action });
            continue;
        }
        let reader = EventReader {
            key: Some(key_text.to_string()),
            event: event.to_string(),
            read_value: trigger.read_value,
        };
        let _firing = super::event_chain::firing(&reg);
        if trigger.commands.is_some() {
            // Its command's client waits for it, and it may override the reply at once.
            let prepare = |exec: &Arc<Execution>| super::hooks::await_execution(exec);
            super::fire_then(&reg, Box::new(reader), None, Some(&prepare));
        } else {
            super::fire(&reg, Box::new(reader));
        }
    }
    deferred
}

fn takes(reg: &Registration, trigger: &KeysTrigger, event: &str, key: &[u8]) -> bool {
    !reg.is_paused() && trigger.matches_key(key) && trigger.matches_event(event)
}

/// Whether a registration may take an event raised inside the notification callback (it
/// is queued only then): any stream message, or a key a registration outside the event's
/// chain matches by prefix and event.
pub fn wanted(event: &str, key: &[u8]) -> bool {
    globals().registrations.list().iter().any(|reg| {
        if event == "xadd" && reg.trigger.reader() == "StreamReader" {
            return true;
        }
        reg.trigger
            .as_any()
            .downcast_ref::<KeysTrigger>()
            .is_some_and(|t| {
                t.commands.is_none()
                    && takes(reg, t, event, key)
                    && !super::event_chain::in_chain(reg)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_record_is_read_once_and_an_error_stays_an_error() {
        let record = Value::Map(vec![(Value::str("key"), Value::str("k"))]);
        let mut ready = ReadyReader(Some(Ok(record.clone())));
        let batch = ready.next_batch(10).unwrap().unwrap();
        assert_eq!(format!("{batch:?}"), format!("{:?}", vec![record]));
        assert!(ready.next_batch(10).unwrap().is_none());
        let mut failed = ReadyReader(Some(Err("WRONGTYPE".into())));
        let error = failed.next_batch(10).unwrap_err();
        assert!(format!("{error:#}").contains("WRONGTYPE"));
        assert!(failed.next_batch(10).unwrap().is_none());
    }

    #[test]
    fn a_record_without_its_value_reads_nothing() {
        let record = EventReader::record("k", "set", false).unwrap();
        let want = Value::Map(vec![
            (Value::str("key"), Value::str("k")),
            (Value::str("event"), Value::str("set")),
        ]);
        assert_eq!(format!("{record:?}"), format!("{want:?}"));
    }
}
