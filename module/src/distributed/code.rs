//! The payload of RG.DUMPCODE and RG.RESTORECODE: every Python session and Wasm guest of
//! a server, as the changes that re-create them ([`Change::Session`], [`Change::Guest`]:
//! the same encoding the RDB's peers, replicas and snapshots use), and the ids of the
//! registrations that are paused.
//!
//! On the wire: `MAGIC`, the format version (2 bytes, big-endian), the body, then the
//! sha256 of all that. The version is read before the checksum, so a payload of a newer
//! module is named as such rather than as corrupt.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};

use super::changes::Change;
use crate::cluster::messages::text;
use crate::engine::codec;
use crate::engine::value::Value;
use crate::globals::globals;

/// What every payload starts with.
pub const MAGIC: &[u8; 8] = b"GEARSCDE";

/// The format this module writes, and the newest it reads.
pub const FORMAT: u16 = 1;

const HEADER: usize = MAGIC.len() + 2;
const CHECKSUM: usize = 32;

/// A server's code: its sessions and guests, and which of their registrations are paused.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    /// Each a [`Change::Session`] (without `replace_with`) or a [`Change::Guest`].
    pub items: Vec<Change>,
    /// Registrations of `items` that are paused.
    pub paused: Vec<String>,
}

impl Code {
    /// This server's code (main thread, or the Redis lock held).
    pub fn here() -> Code {
        let mut code = Code {
            items: super::sync::items(false),
            paused: Vec::new(),
        };
        let held: HashSet<&str> = code.registration_ids().into_iter().collect();
        let paused = globals()
            .registrations
            .list()
            .into_iter()
            .filter(|r| r.is_paused() && held.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        code.paused = paused;
        code
    }

    /// The payload RG.DUMPCODE answers.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + CHECKSUM);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&codec::encode_one(&self.body()));
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Reads a payload, refusing one that is foreign, of a newer format, truncated,
    /// corrupt, or that names a session, guest or registration twice.
    pub fn from_payload(bytes: &[u8]) -> Result<Code> {
        if bytes.len() < MAGIC.len() || !bytes.starts_with(MAGIC) {
            bail!("the payload is not a dump of RG.DUMPCODE");
        }
        if bytes.len() < HEADER + CHECKSUM {
            bail!("the payload is truncated");
        }
        let format = u16::from_be_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
        if format == 0 || format > FORMAT {
            bail!(
                "the payload is of format version {format}; this module reads versions 1 to {FORMAT}"
            );
        }
        let (signed, sum) = bytes.split_at(bytes.len() - CHECKSUM);
        if Sha256::digest(signed).as_slice() != sum {
            bail!("the payload is truncated or corrupt (its checksum does not match)");
        }
        let body = codec::decode(&signed[HEADER..])
            .map_err(|e| anyhow!("the payload is corrupt: {e:#}"))?;
        Code::from_body(body)
    }

    /// The body alone (what a restore carries between masters).
    pub fn body(&self) -> Value {
        Value::List(vec![
            Value::List(
                self.items
                    .iter()
                    .map(|i| Value::Bytes(i.encode()))
                    .collect(),
            ),
            Value::List(self.paused.iter().map(Value::str).collect()),
        ])
    }

    pub fn from_body(body: Value) -> Result<Code> {
        let Value::List(fields) = body else {
            bail!("code that is not a list");
        };
        let [Value::List(items), Value::List(paused)] = <[Value; 2]>::try_from(fields)
            .map_err(|_| anyhow!("code without its items and paused registrations"))?
        else {
            bail!("code whose items or paused registrations are not lists");
        };
        let items = items
            .into_iter()
            .map(|i| match i {
                Value::Bytes(b) => Change::decode(&b),
                _ => Err(anyhow!("a code item that is not bytes")),
            })
            .collect::<Result<Vec<_>>>()?;
        let paused = paused.into_iter().map(text).collect::<Result<Vec<_>>>()?;
        let code = Code { items, paused };
        code.check()?;
        Ok(code)
    }

    /// Every registration id of the items (ids of unregistered guest slots are "").
    pub fn registration_ids(&self) -> Vec<&str> {
        self.items
            .iter()
            .flat_map(|item| -> Vec<&str> {
                match item {
                    Change::Session { ids, .. } => ids.iter().map(|(_, id)| id.as_str()).collect(),
                    Change::Guest { ids, .. } => ids
                        .iter()
                        .map(String::as_str)
                        .filter(|id| !id.is_empty())
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }

    /// Only sessions and guests, each once, each registration once, and only their
    /// registrations paused.
    fn check(&self) -> Result<()> {
        let mut names = HashSet::new();
        for item in &self.items {
            let name = match item {
                Change::Session {
                    sid,
                    replace_with: None,
                    ..
                } => format!("session '{sid}'"),
                Change::Guest { name, .. } => format!("guest '{name}'"),
                _ => bail!("the payload holds a change that is neither a session nor a guest"),
            };
            if !names.insert(name.clone()) {
                bail!("the payload holds {name} twice");
            }
        }
        let mut ids = HashSet::new();
        for id in self.registration_ids() {
            if !ids.insert(id) {
                bail!("the payload holds registration {id} twice");
            }
        }
        if let Some(id) = self.paused.iter().find(|id| !ids.contains(id.as_str())) {
            bail!("the payload pauses registration {id}, which it does not hold");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, ids: &[&str]) -> Change {
        Change::Session {
            sid: sid.into(),
            desc: Some("d".into()),
            code: "GB().register()".into(),
            user: "alice".into(),
            db: 2,
            ids: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (i, id.to_string()))
                .collect(),
            replace_with: None,
        }
    }

    fn guest(name: &str, ids: &[&str]) -> Change {
        Change::Guest {
            name: name.into(),
            desc: None,
            bytes: vec![0, 97, 115, 109, 255],
            ids: ids.iter().map(|id| id.to_string()).collect(),
            user: "default".into(),
            db: 0,
        }
    }

    fn sample() -> Code {
        Code {
            items: vec![session("s", &["a-1", "a-2"]), guest("g", &["a-3", ""])],
            paused: vec!["a-2".into()],
        }
    }

    fn error(bytes: &[u8]) -> String {
        format!("{:#}", Code::from_payload(bytes).unwrap_err())
    }

    #[test]
    fn a_payload_reads_back() {
        let code = sample();
        let payload = code.to_payload();
        assert!(payload.starts_with(MAGIC));
        assert_eq!(Code::from_payload(&payload).unwrap(), code);
        let empty = Code {
            items: vec![],
            paused: vec![],
        };
        assert_eq!(Code::from_payload(&empty.to_payload()).unwrap(), empty);
        assert_eq!(
            Code::from_body(code.body()).unwrap().registration_ids(),
            ["a-1", "a-2", "a-3"]
        );
    }

    #[test]
    fn foreign_truncated_and_corrupt_payloads_are_refused() {
        let payload = sample().to_payload();
        assert!(error(b"").contains("not a dump"));
        assert!(error(b"\x00asm\x01\x00\x00\x00").contains("not a dump"));
        assert!(error(&payload[..HEADER + 4]).contains("truncated"));
        for cut in [1, 10, payload.len() / 2] {
            let e = error(&payload[..payload.len() - cut]);
            assert!(e.contains("truncated"), "{e}");
        }
        let mut flipped = payload.clone();
        flipped[HEADER + 5] ^= 0x40;
        assert!(error(&flipped).contains("checksum does not match"));
        let mut longer = payload.clone();
        longer.push(0);
        assert!(error(&longer).contains("checksum does not match"));
    }

    #[test]
    fn another_format_version_is_named() {
        let mut newer = sample().to_payload();
        newer[MAGIC.len()..HEADER].copy_from_slice(&(FORMAT + 1).to_be_bytes());
        let e = error(&newer);
        assert!(e.contains(&format!("format version {}", FORMAT + 1)), "{e}");
        let mut zero = sample().to_payload();
        zero[MAGIC.len()..HEADER].copy_from_slice(&0u16.to_be_bytes());
        assert!(error(&zero).contains("format version 0"));
    }

    /// A payload signed correctly around a body that is not valid code.
    fn signed(body: &Value) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&codec::encode_one(body));
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    #[test]
    fn well_signed_bodies_that_are_not_code_are_refused() {
        let body = |items: Vec<Change>, paused: &[&str]| {
            Code {
                items,
                paused: paused.iter().map(|p| p.to_string()).collect(),
            }
            .body()
        };
        let cases = [
            (
                body(vec![session("s", &["a-1"]), session("s", &["a-2"])], &[]),
                "session 's' twice",
            ),
            (
                body(vec![guest("g", &[]), guest("g", &[])], &[]),
                "guest 'g' twice",
            ),
            (
                body(vec![session("s", &["a-1"]), guest("g", &["a-1"])], &[]),
                "registration a-1 twice",
            ),
            (
                body(vec![session("s", &["a-1"])], &["a-9"]),
                "pauses registration a-9",
            ),
            (
                body(vec![Change::Unregister { id: "a-1".into() }], &[]),
                "neither a session nor a guest",
            ),
            (Value::List(vec![Value::Int(1)]), "without its items"),
            (Value::Int(3), "not a list"),
        ];
        for (body, want) in cases {
            let e = error(&signed(&body));
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let mut upgrade = session("s", &["a-1"]);
        if let Change::Session { replace_with, .. } = &mut upgrade {
            *replace_with = Some("t".into());
        }
        assert!(error(&signed(&body(vec![upgrade], &[]))).contains("neither"));
    }
}
