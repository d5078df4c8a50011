//! Reader and register() arguments, as a plan's reader spec holds them (from a Python dict,
//! from a guest's MessagePack map), read through one trait so readers and triggers are
//! built by the same code for every language.

use crate::engine::plan::{PlanArg, ReaderSpec};
use crate::engine::value::Value;

/// Named arguments given to run() or register(). A missing name and an explicit None
/// read as None (the default applies).
pub trait Args {
    fn text(&self, name: &str) -> Result<Option<String>, String>;
    fn flag(&self, name: &str) -> Result<Option<bool>, String>;
    fn number(&self, name: &str) -> Result<Option<u64>, String>;
    fn texts(&self, name: &str) -> Result<Option<Vec<String>>, String>;
    /// Whether the name was given (as something other than None).
    fn has(&self, name: &str) -> bool;
    /// The names given (as something other than None).
    fn names(&self) -> Vec<String>;
}

/// The error every front end reports for an argument of the wrong type.
pub fn wrong_type(name: &str) -> String {
    format!("reader argument '{name}' has the wrong type")
}

pub fn text_or(args: &dyn Args, name: &str, default: &str) -> Result<String, String> {
    Ok(args.text(name)?.unwrap_or_else(|| default.to_string()))
}

pub fn flag_or(args: &dyn Args, name: &str, default: bool) -> Result<bool, String> {
    Ok(args.flag(name)?.unwrap_or(default))
}

pub fn number_or(args: &dyn Args, name: &str, default: u64) -> Result<u64, String> {
    Ok(args.number(name)?.unwrap_or(default))
}

/// A plan's reader spec read as named arguments (every front end's, once built). An
/// argument that is user code has the wrong type wherever a plain value is read.
impl Args for ReaderSpec {
    fn text(&self, name: &str) -> Result<Option<String>, String> {
        match given(self, name) {
            None => Ok(None),
            Some(PlanArg::Value(Value::Str(s))) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match given(self, name) {
            None => Ok(None),
            Some(PlanArg::Value(Value::Bool(b))) => Ok(Some(*b)),
            Some(PlanArg::Value(Value::Int(i))) => Ok(Some(*i != 0)),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn number(&self, name: &str) -> Result<Option<u64>, String> {
        match given(self, name) {
            None => Ok(None),
            Some(PlanArg::Value(Value::Int(i))) if *i >= 0 => Ok(Some(*i as u64)),
            Some(PlanArg::Value(Value::Bool(b))) => Ok(Some(*b as u64)),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn texts(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        match given(self, name) {
            None => Ok(None),
            Some(PlanArg::Value(Value::List(items))) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(wrong_type(name)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(name)),
        }
    }
    fn has(&self, name: &str) -> bool {
        given(self, name).is_some()
    }
    fn names(&self) -> Vec<String> {
        self.args
            .iter()
            .filter(|(_, a)| !matches!(a, PlanArg::Value(Value::Nil)))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// The argument `name` unless missing or None.
fn given<'s>(spec: &'s ReaderSpec, name: &str) -> Option<&'s PlanArg> {
    spec.arg(name)
        .filter(|a| !matches!(a, PlanArg::Value(Value::Nil)))
}
