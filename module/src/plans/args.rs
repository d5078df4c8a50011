//! Reader and register() arguments as each front end hands them over (a Python dict, a
//! guest's MessagePack map), read through one trait so readers and triggers are built by
//! the same code for every language.

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
