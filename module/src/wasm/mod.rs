//! The wasmtime host: guests compiled once at upload, instances from an InstancePre,
//! fused guest steps, limits (time budget, memory cap) and the host functions.

pub mod bindings;
pub mod codec;
pub mod fused;
pub mod generator;
pub mod guests;
pub mod plan;
pub mod program;
pub mod runtime;
pub mod state;
