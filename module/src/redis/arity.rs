//! The argument count of a command, checked before anything else looks at its arguments.
//!
//! Redis checks a client command's arity before its ACL check; the ACL check then finds
//! keys and channels at the positions the command's key specs give, without bounds
//! checks. The door (`door.rs`) runs the ACL check before the call, so it checks arity
//! first, as Redis does: a `SET k` or a bare `PUBLISH` must be a "wrong number of
//! arguments" error, not a read past the argument array. Arities come from COMMAND INFO,
//! once per command name (subcommands included), and never change while Redis runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::call::call;
use super::lock;
use crate::engine::value::Value;

/// A command's arity (Redis's convention: n exactly, or -n for at least n) and its
/// subcommands' (by lower-case name).
struct Shape {
    arity: i64,
    subcommands: HashMap<Vec<u8>, i64>,
}

thread_local! {
    /// Known shapes by command name as callers spell it (no lower-casing per call; a
    /// thread asks COMMAND INFO once per spelling).
    static SHAPES: RefCell<HashMap<Vec<u8>, Rc<Shape>>> = RefCell::new(HashMap::new());
}

fn arity_of(entry: &Value) -> Option<(Vec<u8>, i64)> {
    let Value::List(fields) = entry else {
        return None;
    };
    let name = match fields.first()? {
        Value::Str(s) => s.to_ascii_lowercase().into_bytes(),
        Value::Bytes(b) => b.to_ascii_lowercase(),
        _ => return None,
    };
    match fields.get(1)? {
        Value::Int(n) => Some((name, *n)),
        _ => None,
    }
}

/// COMMAND INFO of `name` (lower case), or None for an unknown command.
fn fetch(name: &[u8]) -> Option<Shape> {
    let info = call(&lock::context(), &[b"COMMAND", b"INFO", name]);
    let Value::List(mut entries) = info else {
        return None;
    };
    let entry = entries.pop()?;
    let (_, arity) = arity_of(&entry)?;
    let mut subcommands = HashMap::new();
    if let Value::List(fields) = &entry {
        if let Some(Value::List(subs)) = fields.get(9) {
            for sub in subs {
                if let Some((full, n)) = arity_of(sub) {
                    // "config|get" -> "get"
                    let short = match full.iter().position(|&b| b == b'|') {
                        Some(i) => full[i + 1..].to_vec(),
                        None => full,
                    };
                    subcommands.insert(short, n);
                }
            }
        }
    }
    Some(Shape { arity, subcommands })
}

thread_local! {
    /// The last command asked about: code calls the same command over and over.
    static LAST: RefCell<Option<(Vec<u8>, Rc<Shape>)>> = const { RefCell::new(None) };
}

fn shape(name: &[u8]) -> Option<Rc<Shape>> {
    let last = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|(n, _)| n.as_slice() == name)
            .map(|(_, s)| s.clone())
    });
    if last.is_some() {
        return last;
    }
    let found = known(name);
    if let Some(shape) = &found {
        LAST.with(|l| *l.borrow_mut() = Some((name.to_vec(), shape.clone())));
    }
    found
}

fn known(name: &[u8]) -> Option<Rc<Shape>> {
    if let Some(known) = SHAPES.with(|s| s.borrow().get(name).cloned()) {
        return Some(known);
    }
    // Unknown names are not remembered: a module loaded later may add them.
    let fetched = Rc::new(fetch(&name.to_ascii_lowercase())?);
    SHAPES.with(|s| s.borrow_mut().insert(name.to_vec(), fetched.clone()));
    Some(fetched)
}

fn fits(arity: i64, argc: usize) -> bool {
    let argc = argc as i64;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Whether `args` (command name first) has a count of arguments its command accepts.
/// `Ok(false)`: the command (or subcommand) is unknown, and calling it gives Redis's
/// own error. The Redis lock must be held.
pub fn check(args: &[&[u8]]) -> Result<bool, String> {
    let Some(name) = args.first() else {
        return Ok(false);
    };
    let Some(shape) = shape(name) else {
        return Ok(false);
    };
    let wrong = || {
        Err(format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(name).to_ascii_lowercase()
        ))
    };
    if !fits(shape.arity, args.len()) {
        return wrong();
    }
    if shape.subcommands.is_empty() {
        return Ok(true);
    }
    let Some(sub) = args.get(1) else {
        return wrong();
    };
    let sub = sub.to_ascii_lowercase();
    match shape.subcommands.get(&sub) {
        Some(&arity) if fits(arity, args.len()) => Ok(true),
        Some(_) => wrong(),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn redis_arity_convention() {
        assert!(fits(3, 3) && !fits(3, 2) && !fits(3, 4));
        assert!(fits(-2, 2) && fits(-2, 5) && !fits(-2, 1));
    }
}
