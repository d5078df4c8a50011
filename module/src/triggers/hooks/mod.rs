//! Intercepting commands: CommandReader hooks (`register(hook=cmd)`) run instead of a
//! command, and KeysReader registrations with `commands=` hold the calling client until
//! their executions end. The command filter (`redis/filter.rs`) turns such a command into
//! RG.INNERHOOK (`commands/inner_hook.rs`), which starts a hook chain or an intercept here.
//!
//! - `trigger`: the hook trigger, and which invocations of a command it hooks;
//! - `hookable`: which commands can be hooked or intercepted at all;
//! - `intercepted`: the filter's question: is this command hooked or intercepted now;
//! - `chain`: a command's hooks run one after the other, through call_next;
//! - `intercept`: a command run for `commands=` registrations, and override_reply.

pub mod chain;
pub mod hookable;
pub mod intercept;
pub mod intercepted;
pub mod trigger;

// What keyspace events ask of an intercept (triggers/keys.rs).
pub use intercept::{await_execution, current_command};
