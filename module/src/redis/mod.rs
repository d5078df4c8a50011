//! The thin Redis-facing layer shared by commands, readers and hosts: the Redis lock and
//! its time slices, calling commands, writing replies, blocked clients, slow work off the
//! main thread, the command filter.

pub mod acl;
pub mod arity;
pub mod blocked;
pub mod call;
pub mod door;
pub mod fast;
pub mod filter;
pub mod lock;
pub mod offload;
pub mod reply;
pub mod string;
