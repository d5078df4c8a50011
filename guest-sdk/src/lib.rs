//! Guest SDK for WebAssembly pipelines. The host<->guest contract (WIT) and the
//! GearsBuilder-like API arrive with the Wasm issue; this crate holds the place
//! in the workspace so the layout of DESIGN.md is whole.

/// Version of the host<->guest contract this SDK speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";
