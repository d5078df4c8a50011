//! not_a_guest.wasm: a plain wasi command component that does not export
//! `redisgears:guest/plans` at all; the host must refuse it.

fn main() {}
