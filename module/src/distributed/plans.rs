//! Plans by content hash: the initiator sends a plan's bytes only to a shard that does not
//! hold them yet, so a run repeated (a script sent again, a big pickled model) does not
//! ship the same bytes each time. A shard keeps the plans it received, the newest few;
//! one that no longer holds a plan it is offered by hash asks for the bytes again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// Plans kept by a shard that received them, at most this many...
const HELD: usize = 32;
/// ...and about this many bytes.
const HELD_BYTES: usize = 64 << 20;
/// Hashes remembered per peer.
const KNOWN: usize = 64;

static HOLDING: Mutex<VecDeque<(String, Arc<Vec<u8>>)>> = Mutex::new(VecDeque::new());
static PEERS_HOLD: Mutex<Option<HashMap<String, VecDeque<String>>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plan offered by hash that this shard does not hold (any more).
#[derive(Debug)]
pub struct Missing;

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the plan offered by its hash is not held here")
    }
}

impl std::error::Error for Missing {}

pub fn hash_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Initiator: whether `peer` said it holds plan `hash`.
pub fn peer_holds(peer: &str, hash: &str) -> bool {
    lock(&PEERS_HOLD)
        .as_ref()
        .and_then(|m| m.get(peer))
        .is_some_and(|hashes| hashes.iter().any(|h| h == hash))
}

/// Initiator: `peer` received plan `hash`.
pub fn peer_received(peer: &str, hash: &str) {
    let mut map = lock(&PEERS_HOLD);
    let hashes = map
        .get_or_insert_with(HashMap::new)
        .entry(peer.to_string())
        .or_default();
    if !hashes.iter().any(|h| h == hash) {
        hashes.push_back(hash.to_string());
        if hashes.len() > KNOWN {
            hashes.pop_front();
        }
    }
}

/// Initiator: `peer` holds none of the plans it had (it asked again, or restarted).
pub fn peer_forgot(peer: &str) {
    if let Some(map) = lock(&PEERS_HOLD).as_mut() {
        map.remove(peer);
    }
}

/// Peer: the bytes of plan `hash`, if held.
pub fn held(hash: &str) -> Option<Arc<Vec<u8>>> {
    lock(&HOLDING)
        .iter()
        .find(|(h, _)| h == hash)
        .map(|(_, b)| b.clone())
}

/// Peer: keeps the bytes of plan `hash` (the oldest go first).
pub fn hold(hash: &str, bytes: Arc<Vec<u8>>) {
    let mut holding = lock(&HOLDING);
    holding.retain(|(h, _)| h != hash);
    holding.push_back((hash.to_string(), bytes));
    while holding.len() > HELD
        || (holding.len() > 1 && holding.iter().map(|(_, b)| b.len()).sum::<usize>() > HELD_BYTES)
    {
        holding.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_plans_are_found_by_hash_and_bounded() {
        let h = hash_of(b"plan");
        assert_eq!(h.len(), 64);
        assert!(held(&h).is_none());
        hold(&h, Arc::new(b"plan".to_vec()));
        assert_eq!(
            held(&h).as_deref().map(|b| b.as_slice()),
            Some(&b"plan"[..])
        );
        for i in 0..HELD {
            hold(&format!("other{i}"), Arc::new(vec![0]));
        }
        assert!(held(&h).is_none(), "the oldest went first");
    }

    #[test]
    fn what_each_peer_holds() {
        assert!(!peer_holds("p", "h1"));
        peer_received("p", "h1");
        assert!(peer_holds("p", "h1") && !peer_holds("q", "h1"));
        peer_forgot("p");
        assert!(!peer_holds("p", "h1"));
    }
}
