//! The wasmtime host: guests compiled once at upload, instances from an InstancePre,
//! fused guest steps, limits (time budget, memory cap) and the host functions.

pub mod bindings;
mod crash;
pub mod described;
pub mod fused;
pub mod generator;
pub mod guests;
pub mod host;
pub mod host_state;
pub mod program;
pub mod runtime;
