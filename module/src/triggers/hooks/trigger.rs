//! The trigger of a CommandReader hook (`register(hook=cmd, keyprefix=...)`), and which
//! invocations of its command it hooks.

use std::any::Any;

use crate::engine::registration::Trigger;
use crate::engine::value::Value;

pub struct HookTrigger {
    /// The hooked command, lower case.
    pub command: String,
    pub keyprefix: Option<String>,
    /// Position of the command's first key (0: none).
    pub first_key: usize,
}

impl HookTrigger {
    /// Whether this hook runs for `command` called with `args` (`args[0]` is the command):
    /// the same command, and its first key under the keyprefix if there is one.
    pub fn hooks(&self, command: &str, args: &[Vec<u8>]) -> bool {
        self.command == command
            && self.keyprefix.as_ref().is_none_or(|prefix| {
                self.first_key > 0
                    && args
                        .get(self.first_key)
                        .is_some_and(|key| key.starts_with(prefix.as_bytes()))
            })
    }
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
