//! The thin Redis-facing layer shared by commands, readers and hosts: the Redis lock and
//! its time slices, calling commands, writing replies, blocked clients, slow work off the
//! main thread, the command filter.
//!
//! # Unsafe code: two conventions every `// SAFETY:` of the crate leans on
//!
//! The API table. `raw::RedisModule_*` are C globals (function pointers) that
//! `RedisModule_Init` fills in the module's OnLoad, on the main thread, before any thread of
//! ours is started and before Redis can call any command or callback of ours; nothing
//! writes them again. Reading one is reading a value fixed before every later thread
//! start (which orders it), so it is never a data race. `unwrap()` only panics for an API
//! the server lacks; the optional ones (Redis 7.2+ ACL categories...) are matched instead.
//!
//! The `Context` convention. redis-module's `Context` is a bare pointer (`Context::new` is
//! safe, the field public), and its own safe methods call the API with it: a `Context` in
//! hand is taken to be a live context that this thread may use now. This crate keeps to
//! that and its safe wrappers taking `&Context` rely on it just as redis-module's do: the
//! contexts made are the ones Redis passes to a command, callback or notification (run by
//! the thread that holds the Redis lock), the main thread's detached context, and a
//! worker's thread-safe context once its lock is taken (`lock::context()`). `Context` holds
//! a raw pointer, so it is neither Send nor Sync: it cannot reach another thread.

pub mod acl;
pub mod arity;
pub mod blocked;
pub mod call;
pub mod capabilities;
pub mod cluster;
pub mod door;
pub mod fast;
pub mod filter;
pub mod lock;
pub mod log;
pub mod offload;
pub mod reply;
pub mod string;
