//! What every front end shares between its builder and the engine: named reader
//! arguments, readers and triggers built from them, and the expansion of operations into
//! engine steps.

pub mod args;
pub mod expand;
pub mod readers;
pub mod triggers;
pub mod validate;
