//! Cluster support: hash slots, which master owns which (the topology), and the link
//! between shards: its frames, its delivery protocol, the threads that carry it, the
//! receiving end, and the messages of distributed executions.

pub mod frame;
pub mod incarnation;
pub mod link;
pub mod messages;
pub mod receiver;
pub mod session;
pub mod slots;
pub mod topology;
