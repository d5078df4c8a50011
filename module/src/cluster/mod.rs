//! Cluster support: hash slots, and which master owns which (the topology).

pub mod slots;
pub mod topology;
