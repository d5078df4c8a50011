//! CommandReader registrations with `trigger=name`: RG.TRIGGER name args... runs the
//! registration over the one record `[name, args...]` and replies its results.

use std::any::Any;
use std::sync::Arc;

use crate::engine::registration::{Registration, Trigger};
use crate::engine::value::Value;
use crate::globals::globals;

pub struct CommandTrigger {
    pub name: String,
}

impl Trigger for CommandTrigger {
    fn reader(&self) -> &'static str {
        "CommandReader"
    }

    fn args(&self) -> Vec<(String, Value)> {
        vec![("trigger".into(), Value::str(self.name.as_str()))]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The registration answering `RG.TRIGGER name`.
pub fn find(name: &str) -> Option<Arc<Registration>> {
    globals().registrations.list().into_iter().find(|r| {
        r.trigger
            .as_any()
            .downcast_ref::<CommandTrigger>()
            .is_some_and(|t| t.name == name)
    })
}
