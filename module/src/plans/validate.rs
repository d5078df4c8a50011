//! Limits on what run() and register() accept, shared by every front end: a bad argument
//! is refused with a message naming it before anything is built or registered. Where
//! RedisGears 1.2 had an error text, the message starts with it.

/// Longest name, prefix, pattern or description accepted (bytes).
pub const MAX_NAME_BYTES: usize = 1024;
/// Most entries in a list argument (eventTypes, keyTypes, commands).
pub const MAX_LIST_ITEMS: usize = 256;
/// Longest time argument (milliseconds): about 24.8 days, what a Redis timer holds safely.
pub const MAX_MILLIS: u64 = i32::MAX as u64;
/// Largest batch or SCAN count.
pub const MAX_COUNT: u64 = 1_000_000;

/// The value types a KeysReader registration can filter on.
pub const KEY_TYPES: &[&str] = &["string", "hash", "list", "set", "zset", "stream", "module"];

/// A name, prefix or description: at most MAX_NAME_BYTES, and not empty when `required`.
pub fn name(arg: &str, value: &str, required: bool) -> Result<(), String> {
    if required && value.is_empty() {
        return Err(format!("{arg} must not be empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{arg} is too long ({} bytes, at most {MAX_NAME_BYTES})",
            value.len()
        ));
    }
    Ok(())
}

/// A list of names: at most MAX_LIST_ITEMS entries, each a non-empty name.
pub fn names(arg: &str, values: &[String]) -> Result<(), String> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(format!(
            "{arg} has too many entries ({}, at most {MAX_LIST_ITEMS})",
            values.len()
        ));
    }
    values.iter().try_for_each(|v| name(arg, v, true))
}

/// keyTypes entries are value types.
pub fn key_types(values: &[String]) -> Result<(), String> {
    names("keyTypes", values)?;
    match values
        .iter()
        .find(|t| !KEY_TYPES.iter().any(|k| k.eq_ignore_ascii_case(t)))
    {
        Some(bad) => Err(format!(
            "unknown key type '{bad}' in keyTypes (one of {})",
            KEY_TYPES.join(", ")
        )),
        None => Ok(()),
    }
}

/// A number within `min..=max`.
pub fn number(arg: &str, value: u64, min: u64, max: u64) -> Result<u64, String> {
    if value < min || value > max {
        return Err(format!(
            "{arg} must be between {min} and {max}, got {value}"
        ));
    }
    Ok(value)
}

/// Argument names a reader accepts, for run() and register(); anything else is refused
/// with 1.2's "Unknown arguments were given".
pub fn known(given: &[String], allowed: &[&str]) -> Result<(), String> {
    let unknown: Vec<&str> = given
        .iter()
        .map(String::as_str)
        .filter(|g| !allowed.contains(g))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Unknown arguments were given: {}",
            unknown.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(name("trigger", "t", true).is_ok());
        assert!(name("trigger", "", true).unwrap_err().contains("empty"));
        assert!(name("prefix", "", false).is_ok());
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(name("trigger", &long, true)
            .unwrap_err()
            .contains("too long"));
        assert!(key_types(&["Hash".into(), "stream".into()]).is_ok());
        assert!(key_types(&["bogus".into()])
            .unwrap_err()
            .contains("unknown key type 'bogus'"));
        assert!(names("eventTypes", &vec!["set".to_string(); MAX_LIST_ITEMS + 1]).is_err());
        assert_eq!(number("batch", 5, 1, 10), Ok(5));
        assert!(number("batch", 0, 1, 10).is_err());
        assert!(known(&["prefix".into(), "bogus".into()], &["prefix"])
            .unwrap_err()
            .ends_with("given: bogus"));
    }
}
