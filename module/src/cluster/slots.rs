//! Redis Cluster hash slots.

pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key, honouring `{hash tags}`.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// A tag (without braces) whose keys hash to `slot` when written as `{tag}`: the shortest
/// such tag over [0-9A-Za-z].
pub fn tag_of_slot(slot: u16) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut buf = Vec::new();
    for len in 1..=4usize {
        let total = ALPHABET.len().pow(len as u32);
        for mut n in 0..total {
            buf.clear();
            for _ in 0..len {
                buf.push(ALPHABET[n % ALPHABET.len()]);
                n /= ALPHABET.len();
            }
            if crc16(&buf) % SLOTS == slot {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
    }

    #[test]
    fn hashtags_map_to_their_slot() {
        for slot in [0u16, 1, 5000, 16383] {
            let tag = tag_of_slot(slot);
            assert_eq!(key_slot(format!("x{{{tag}}}").as_bytes()), slot, "{tag}");
        }
    }
}
