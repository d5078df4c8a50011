//! The triggers of register(), built from their named arguments (the same for every
//! front end).

use super::args::{flag_or, number_or, text_or, Args};
use crate::engine::plan::Mode;
use crate::engine::registration::{Registration, Trigger};
use crate::triggers::command::CommandTrigger;
use crate::triggers::hooks::{check_hookable, HookTrigger};
use crate::triggers::keys::KeysTrigger;
use crate::triggers::stream::{OnFailed, StreamTrigger};
use crate::triggers::timer::TimeTrigger;

/// The trigger of a `reader` registration. `own` tells whether an existing registration
/// belongs to the owner registering now (a session being upgraded or re-created may hold
/// its trigger names already).
pub fn trigger(
    reader: &str,
    args: &dyn Args,
    mode: Mode,
    own: &dyn Fn(&Registration) -> bool,
) -> Result<Box<dyn Trigger>, String> {
    Ok(match reader {
        "KeysReader" => Box::new(KeysTrigger {
            prefix: text_or(args, "prefix", "*")?,
            event_types: args.texts("eventTypes")?,
            key_types: args.texts("keyTypes")?,
            read_value: flag_or(args, "readValue", true)?,
            commands: match args.texts("commands")? {
                Some(commands) => {
                    for c in &commands {
                        check_hookable(c)?;
                    }
                    Some(commands)
                }
                None => None,
            },
        }),
        "StreamReader" => {
            let policy = text_or(args, "onFailedPolicy", "continue")?;
            let on_failed = OnFailed::parse(&policy).ok_or_else(|| {
                format!("onFailedPolicy must be continue, abort or retry, got '{policy}'")
            })?;
            if mode == Mode::Sync && on_failed != OnFailed::Continue {
                return Err("sync mode allows only onFailedPolicy='continue'".into());
            }
            Box::new(StreamTrigger::new(
                text_or(args, "prefix", "*")?,
                number_or(args, "batch", 1)?,
                number_or(args, "duration", 0)?,
                on_failed,
                number_or(args, "onFailedRetryInterval", 1)?,
                flag_or(args, "trimStream", true)?,
            ))
        }
        "TimeReader" => {
            let interval = number_or(args, "interval", 0)?;
            if interval == 0 {
                return Err("TimeReader needs interval (milliseconds, at least 1)".into());
            }
            Box::new(TimeTrigger::new(interval))
        }
        "CommandReader" if args.has("hook") => {
            let command = text_or(args, "hook", "")?;
            let first_key = check_hookable(&command)?;
            let keyprefix = args.text("keyprefix")?;
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
                return Err("CommandReader needs trigger=name or hook=command".into());
            }
            if crate::triggers::command::find(&name).is_some_and(|r| !own(&r)) {
                return Err("trigger already registered".into());
            }
            Box::new(CommandTrigger { name })
        }
        other => return Err(format!("register() of {other} is not available")),
    })
}
