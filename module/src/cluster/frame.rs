//! One frame of the shard link: a fixed header, then the body, then an optional MAC.
//!
//! A frame is the single bulk argument of one `RG.INNERMSG` command. The header names
//! who sent it (node id and incarnation), which life of the receiver it is meant for
//! (the receiver's incarnation, so a restarted node refuses frames of its previous life
//! as STALE) and its place in the sender's sequence to that receiver. The receiver's
//! incarnation and the sequence number are stamped when the frame goes on the wire, so
//! a frame queued before a reconnect is stamped again for the peer it reaches.
//!
//! # Layout
//!
//! ```text
//! 0     4     5     6          46              86                126      134      end-32
//! |RGX1 |kind |flags|sender id |sender incarn.  |receiver incarn. |seq (LE)|body ... |[HMAC]
//! ```
//!
//! With flag [`MAC`], the last 32 bytes are HMAC-SHA256 of everything before them under
//! the cluster's shared secret (ClusterSecret).

use anyhow::{bail, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Node ids and incarnations are 40 characters.
pub const ID_LEN: usize = 40;
const MAGIC: &[u8; 4] = b"RGX1";
const KIND: usize = 4;
const FLAGS: usize = 5;
const SENDER: usize = 6;
const SENDER_INC: usize = SENDER + ID_LEN;
const RECEIVER_INC: usize = SENDER_INC + ID_LEN;
const SEQ: usize = RECEIVER_INC + ID_LEN;
/// Where the body starts.
pub const HEADER: usize = SEQ + 8;
const MAC_LEN: usize = 32;
/// The frame ends with a MAC.
pub const MAC: u8 = 1;

/// A frame as it arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub sender: &'a str,
    pub sender_inc: &'a str,
    pub receiver_inc: &'a str,
    pub seq: u64,
    pub body: &'a [u8],
}

/// A new frame from `sender` (incarnation `inc`), to be stamped before it is sent.
pub fn build(kind: u8, sender: &str, inc: &str, body: &[u8], mac: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.push(if mac { MAC } else { 0 });
    out.extend_from_slice(&fixed(sender));
    out.extend_from_slice(&fixed(inc));
    out.extend_from_slice(&[b'0'; ID_LEN]);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(body);
    if mac {
        out.extend_from_slice(&[0; MAC_LEN]);
    }
    out
}

/// Stamps a built frame for the receiver's incarnation `receiver_inc` at `seq`, and signs
/// it when it carries a MAC (then `secret` must be given).
pub fn stamp(frame: &mut [u8], receiver_inc: &str, seq: u64, secret: Option<&[u8]>) {
    if frame.len() < HEADER {
        return;
    }
    frame[RECEIVER_INC..SEQ].copy_from_slice(&fixed(receiver_inc));
    frame[SEQ..HEADER].copy_from_slice(&seq.to_le_bytes());
    if frame[FLAGS] & MAC != 0 && frame.len() >= HEADER + MAC_LEN {
        let end = frame.len() - MAC_LEN;
        let tag = sign(secret.unwrap_or_default(), &frame[..end]);
        frame[end..].copy_from_slice(&tag);
    }
}

/// Reads a frame; with `secret`, only a frame signed with it is accepted.
pub fn parse<'a>(bytes: &'a [u8], secret: Option<&[u8]>) -> Result<Frame<'a>> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        bail!("not a frame of this protocol");
    }
    let signed = bytes[FLAGS] & MAC != 0;
    let end = match (signed, secret) {
        (_, None) if signed => bytes.len().saturating_sub(MAC_LEN).max(HEADER),
        (_, None) => bytes.len(),
        (false, Some(_)) => bail!("an unsigned frame (ClusterSecret is set here)"),
        (true, Some(secret)) => {
            if bytes.len() < HEADER + MAC_LEN {
                bail!("a frame too short for its MAC");
            }
            let end = bytes.len() - MAC_LEN;
            let mut mac = mac_of(secret);
            mac.update(&bytes[..end]);
            if mac.verify_slice(&bytes[end..]).is_err() {
                bail!("a frame with a bad MAC (is ClusterSecret the same on every shard?)");
            }
            end
        }
    };
    let text = |r: std::ops::Range<usize>| {
        std::str::from_utf8(&bytes[r]).map_err(|_| anyhow::anyhow!("a frame with a bad id"))
    };
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[SEQ..HEADER]);
    Ok(Frame {
        kind: bytes[KIND],
        sender: text(SENDER..SENDER_INC)?,
        sender_inc: text(SENDER_INC..RECEIVER_INC)?,
        receiver_inc: text(RECEIVER_INC..SEQ)?,
        seq: u64::from_le_bytes(seq),
        body: &bytes[HEADER..end],
    })
}

fn mac_of(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

fn sign(secret: &[u8], bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = mac_of(secret);
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// An id padded or cut to exactly [`ID_LEN`] bytes (ids are 40 hex characters).
fn fixed(id: &str) -> [u8; ID_LEN] {
    let mut out = [b'0'; ID_LEN];
    let n = id.len().min(ID_LEN);
    out[..n].copy_from_slice(&id.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const AI: &str = "1111111111111111111111111111111111111111";
    const BI: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn a_stamped_frame_reads_back() {
        let mut f = build(7, A, AI, b"body", false);
        stamp(&mut f, BI, 42, None);
        let got = parse(&f, None).unwrap();
        assert_eq!(
            got,
            Frame {
                kind: 7,
                sender: A,
                sender_inc: AI,
                receiver_inc: BI,
                seq: 42,
                body: b"body"
            }
        );
    }

    #[test]
    fn a_signed_frame_needs_the_same_secret() {
        let mut f = build(1, A, AI, b"payload", true);
        stamp(&mut f, BI, 3, Some(b"s3cret"));
        assert_eq!(parse(&f, Some(b"s3cret")).unwrap().body, b"payload");
        assert!(parse(&f, Some(b"other")).is_err());
        // Restamping (a resend to a restarted peer) signs again.
        stamp(&mut f, AI, 4, Some(b"s3cret"));
        assert_eq!(parse(&f, Some(b"s3cret")).unwrap().seq, 4);
        // A tampered body fails.
        let n = f.len();
        f[n - 40] ^= 1;
        assert!(parse(&f, Some(b"s3cret")).is_err());
    }

    #[test]
    fn unsigned_frames_are_refused_where_a_secret_is_set() {
        let mut f = build(1, A, AI, b"x", false);
        stamp(&mut f, BI, 0, None);
        assert!(parse(&f, Some(b"s")).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(b"", None).is_err());
        assert!(parse(&[0u8; 200], None).is_err());
        let mut f = build(1, A, AI, b"x", false);
        f[0] = b'X';
        assert!(parse(&f, None).is_err());
    }
}
