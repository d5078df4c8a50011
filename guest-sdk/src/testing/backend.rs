//! The WIT `host` imports on native targets, with the generated functions' signatures:
//! host.rs calls these instead of wit-bindgen's stubs (which abort outside a component).
//! They go to the thread's [`TestHost`](super::TestHost); without one, what returns a
//! `Result` is an error saying so, logs go to stderr and the rest answers defaults.

use super::host::{current, TestHost, HASHTAG, SHARD_ID};
pub(crate) use crate::__rt::bindings::redisgears::guest::types::Reply;
use crate::Level;

fn outside(what: &str) -> String {
    format!("{what}() called outside a host: use gears::testing to give it one")
}

fn host(what: &str) -> Result<TestHost, String> {
    current().ok_or_else(|| outside(what))
}

/// `args` cut at `lengths`, as the host does (the same errors when they do not add up).
fn cut(args: &[u8], lengths: &[u32]) -> Result<Vec<Vec<u8>>, String> {
    let mut rest = args;
    let mut out = Vec::with_capacity(lengths.len());
    for &len in lengths {
        let (arg, after) = rest
            .split_at_checked(len as usize)
            .ok_or("execute(): the arguments' lengths exceed their buffer")?;
        out.push(arg.to_vec());
        rest = after;
    }
    if !rest.is_empty() {
        return Err("execute(): the arguments' lengths fall short of their buffer".into());
    }
    Ok(out)
}

pub(crate) fn call(args: &[u8], lengths: &[u32]) -> Result<Reply, String> {
    let host = host("execute")?;
    host.run("execute", cut(args, lengths)?)?.into_wit()
}

pub(crate) fn call_next(command: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let host = host("call_next")?;
    let Some(name) = host.hooked() else {
        return Err(
            "call_next() called outside a command hook: give the TestHost one with \
                    TestHost::hook(command)"
                .into(),
        );
    };
    let mut args = Vec::with_capacity(command.len() + 1);
    args.push(name);
    args.extend_from_slice(command);
    match host.run("call_next", args)? {
        super::Reply::Error(e) => Err(e),
        reply => Ok(crate::builder::encode(&reply.to_value())),
    }
}

fn level(name: &str) -> Option<Level> {
    [Level::Debug, Level::Verbose, Level::Notice, Level::Warning]
        .into_iter()
        .find(|l| l.as_str() == name)
}

pub(crate) fn log(level_name: &str, message: &str) {
    // The SDK only passes Level names here; anything else is written as notice.
    let lvl = level(level_name).unwrap_or_default();
    match current() {
        Some(h) => h.logged(lvl, message),
        None => eprintln!("[{level_name}] {message}"),
    }
}

pub(crate) fn try_log(level_name: &str, message: &str) -> Result<(), String> {
    // The host's own text for a level it does not know.
    level(level_name)
        .ok_or("Log level should be one of the following : debug,verbose,notice,warning")?;
    log(level_name, message);
    Ok(())
}

pub(crate) fn config_get(name: &str) -> Option<String> {
    current().and_then(|h| h.config(name))
}

pub(crate) fn shard_id() -> String {
    current().map_or_else(|| SHARD_ID.into(), |h| h.shard())
}

pub(crate) fn hashtag() -> String {
    current().map_or_else(|| HASHTAG.into(), |h| h.tag())
}

pub(crate) fn atomic_begin() {
    if let Some(h) = current() {
        h.atomic(true);
    }
}

pub(crate) fn atomic_end() {
    if let Some(h) = current() {
        h.atomic(false);
    }
}

pub(crate) fn override_reply(reply: &[u8]) -> Result<(), String> {
    let host = host("override_reply")?;
    let value = crate::host::unpack(reply).map_err(|e| format!("override_reply(): {e}"))?;
    host.overridden(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn lengths_cut_the_buffer_as_the_host_does() {
        assert_eq!(
            cut(b"getk", &[3, 1]),
            Ok(vec![b"get".to_vec(), b"k".to_vec()])
        );
        assert!(cut(b"abc", &[2]).is_err_and(|e| e.contains("fall short")));
        assert!(cut(b"abc", &[2, 2]).is_err_and(|e| e.contains("exceed")));
    }
}
