//! The triggers of register(), built from their named arguments, and started once the
//! registration is made (the same for every front end).

use std::sync::Arc;

use super::args::{flag_or, number_or, text_or, Args};
use super::validate::{self, MAX_COUNT, MAX_MILLIS};
use crate::engine::plan::Mode;
use crate::engine::registration::{Registration, Trigger};
use crate::triggers::command::CommandTrigger;
use crate::triggers::hooks::hookable::check_hookable;
use crate::triggers::hooks::trigger::HookTrigger;
use crate::triggers::keys::KeysTrigger;
use crate::triggers::stream::{self, OnFailed, StreamTrigger};
use crate::triggers::timer::{self, TimeTrigger};

/// The trigger of a `reader` registration. `own` tells whether an existing registration
/// belongs to the owner registering now (a session being upgraded or re-created may hold
/// its trigger names already).
pub fn trigger(
    reader: &str,
    args: &dyn Args,
    mode: Mode,
    own: &dyn Fn(&Registration) -> bool,
) -> Result<Box<dyn Trigger>, String> {
    let allowed = allowed_args(reader).ok_or_else(|| {
        format!("given reader does not exists or does not support register ({reader})")
    })?;
    validate::known(&args.names(), allowed)?;
    let prefix = || -> Result<String, String> {
        let prefix = text_or(args, "prefix", "*")?;
        validate::name("prefix", &prefix, false)?;
        Ok(prefix)
    };
    let list = |name: &str| -> Result<Option<Vec<String>>, String> {
        let items = args.texts(name)?;
        if let Some(items) = &items {
            validate::names(name, items)?;
        }
        Ok(items)
    };
    Ok(match reader {
        "KeysReader" => Box::new(KeysTrigger {
            prefix: prefix()?,
            event_types: list("eventTypes")?,
            key_types: match list("keyTypes")? {
                Some(types) => {
                    validate::key_types(&types)?;
                    Some(types)
                }
                None => None,
            },
            read_value: flag_or(args, "readValue", true)?,
            commands: match list("commands")? {
                Some(commands) => {
                    for c in &commands {
                        if check_hookable(c, true)? == 0 {
                            return Err(format!(
                                "commands: '{c}' takes no key, so it causes no key event \
                                 (list only commands that write keys)"
                            ));
                        }
                    }
                    Some(commands)
                }
                None => None,
            },
        }),
        "StreamReader" => {
            let policy = text_or(args, "onFailedPolicy", "continue")?;
            let on_failed = OnFailed::parse(&policy).ok_or_else(|| {
                format!("onFailedPolicy must be Continue/Abort/Retry, got '{policy}'")
            })?;
            if mode == Mode::Sync && on_failed != OnFailed::Continue {
                return Err(
                    "ExecutionMode sync can only be combined with OnFailedPolicy Continue".into(),
                );
            }
            let millis = |name: &str, default: u64| -> Result<u64, String> {
                validate::number(name, number_or(args, name, default)?, 0, MAX_MILLIS)
            };
            Box::new(StreamTrigger::new(
                prefix()?,
                validate::number("batch", number_or(args, "batch", 1)?, 1, MAX_COUNT)?,
                millis("duration", 0)?,
                on_failed,
                // Seconds (as in 1.2): the same longest wait as the millisecond arguments.
                validate::number(
                    "onFailedRetryInterval",
                    number_or(args, "onFailedRetryInterval", 1)?,
                    0,
                    MAX_MILLIS / 1000,
                )?,
                flag_or(args, "trimStream", true)?,
            ))
        }
        "TimeReader" => {
            let interval = number_or(args, "interval", 0)?;
            if interval == 0 {
                return Err("TimeReader needs interval (milliseconds, at least 1)".into());
            }
            Box::new(TimeTrigger::new(validate::number(
                "interval", interval, 1, MAX_MILLIS,
            )?))
        }
        "CommandReader" if args.has("hook") && args.has("trigger") => {
            return Err("trigger argument can not be given with keyprefix or hook".into())
        }
        "CommandReader" if args.has("hook") => {
            let command = text_or(args, "hook", "")?;
            validate::name("hook", &command, true)?;
            let keyprefix = args.text("keyprefix")?;
            let first_key = check_hookable(&command, keyprefix.is_some())?;
            if let Some(p) = &keyprefix {
                validate::name("keyprefix", p, false)?;
            }
            if keyprefix.is_some() && first_key == 0 {
                return Err(format!("keyprefix given but '{command}' has no key"));
            }
            Box::new(HookTrigger {
                command: command.to_ascii_lowercase(),
                keyprefix,
                first_key,
            })
        }
        "CommandReader" => {
            let name = text_or(args, "trigger", "")?;
            if name.is_empty() {
                return Err("no trigger or hook argument was given".into());
            }
            validate::name("trigger", &name, true)?;
            if args.has("keyprefix") {
                return Err("trigger argument can not be given with keyprefix or hook".into());
            }
            if crate::triggers::command::find(&name).is_some_and(|r| !own(&r)) {
                return Err("trigger already registered".into());
            }
            Box::new(CommandTrigger { name })
        }
        other => return Err(format!("register() of {other} is not available")),
    })
}

/// Starts what a new registration's trigger needs besides Redis's events (main thread):
/// a TimeReader's timer, a StreamReader's sweep of the streams already there.
pub fn start(registration: &Arc<Registration>) {
    timer::start(registration);
    stream::start(registration);
}

/// The arguments register() of each reader takes (None: it has no register()).
fn allowed_args(reader: &str) -> Option<&'static [&'static str]> {
    Some(match reader {
        "KeysReader" => &["prefix", "eventTypes", "keyTypes", "commands", "readValue"],
        "StreamReader" => &[
            "prefix",
            "batch",
            "duration",
            "onFailedPolicy",
            "onFailedRetryInterval",
            "trimStream",
        ],
        "TimeReader" => &["interval"],
        "CommandReader" => &["trigger", "hook", "keyprefix"],
        _ => return None,
    })
}
