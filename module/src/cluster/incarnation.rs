//! The incarnation of this process: 40 random hex characters drawn once at load.
//! Peers tell a restarted shard from a reconnect by it (RG.INFOCLUSTER shows it as
//! runid); it never changes while the process lives, whatever the topology does.

use std::io::Read;

/// A new incarnation id.
pub fn draw() -> String {
    let mut bytes = [0u8; 20];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: the time and the pid still differ from one process to the next.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = now ^ ((std::process::id() as u128) << 64);
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn forty_hex_characters_new_each_time() {
        let a = super::draw();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, super::draw());
    }
}
