//! The language-agnostic core: values, plans, stages, executions and the worker pool.
//! Nothing here knows Python, Wasm or Redis.

pub mod backlog;
pub mod codec;
pub mod cohort;
pub mod compile;
pub mod execution;
pub mod fault;
pub mod native;
pub mod operator;
pub mod plan;
pub mod plan_codec;
pub mod pool;
pub mod reader;
pub mod registration;
pub mod registry;
pub mod run;
pub mod spares;
pub mod value;
