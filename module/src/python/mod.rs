//! The Python host: the embedded interpreter, `_gears`, sessions, scripts, and the fused
//! runs that plug Python steps into the engine.

pub mod builder;
pub mod convert;
pub mod errors;
pub mod fused;
pub mod gears_module;
pub mod generator;
pub mod host;
pub mod info;
pub mod interrupt;
pub mod janitor;
pub mod memory;
pub mod nested;
pub mod paths;
pub mod profile;
pub mod requirements;
pub mod runtime;
pub mod script;
pub mod session;
pub mod shim;
pub mod thread_state;
pub mod watchdog;
