//! Cluster support. For now: hash slots (the topology and messaging arrive with the
//! cluster issue).

pub mod slots;
