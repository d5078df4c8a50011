//! What shards say to each other about a distributed execution: the frame kinds and
//! their bodies, each one MessagePack value.
//!
//! The start has two phases: the initiator sends the plan (PLAN); every shard answers
//! RECEIVED once it holds a run ready to start, or REFUSED with the reason (Python off,
//! a guest missing); only when all received does the initiator send RUN, so a refusal
//! aborts everywhere before any side effect. Records then move as BATCHes (many
//! records per frame; the last one of a stage carries the count of batches sent), a
//! shard whose part ended says DONE, and ABORT ends a run everywhere.

use anyhow::{anyhow, bail, Result};

use crate::engine::codec;
use crate::engine::run::Inbound;
use crate::engine::value::Value;

pub const PLAN: u8 = 1;
pub const RECEIVED: u8 = 2;
pub const REFUSED: u8 = 3;
pub const RUN: u8 = 4;
pub const BATCH: u8 = 5;
pub const ABORT: u8 = 6;
pub const DONE: u8 = 7;
pub const NEED_GUEST: u8 = 8;
pub const GUEST: u8 = 9;
pub const ASK: u8 = 10;
pub const ANSWER: u8 = 11;
pub const NEED_PLAN: u8 = 12;
pub const CHANGE: u8 = 13;
pub const CHANGED: u8 = 14;

/// The plan of an execution, as the initiator offers it to the other shards.
#[derive(Debug, Clone)]
pub struct Offer {
    pub exec: String,
    /// The plan's bytes (`Plan::encode`); empty when the receiver holds them already.
    pub plan: Vec<u8>,
    /// sha256 of the plan's bytes: plans are known by it.
    pub hash: String,
    /// The shards taking part, by node id, in the order batches name them.
    pub shards: Vec<String>,
    pub initiator: usize,
    /// Whom the run acts for, and in which database.
    pub user: String,
    pub db: i64,
    /// The initiator's topology (`Topology::fingerprint`): every shard must route keys
    /// alike.
    pub topology: String,
    /// A registration's run: every shard has its plan under this id, so neither the plan
    /// nor its hash travels ("" for a plan that travels).
    pub registration: String,
}

/// A message about execution `exec`.
#[derive(Debug, Clone)]
pub enum Message {
    Plan(Offer),
    Received {
        exec: String,
    },
    Refused {
        exec: String,
        why: String,
    },
    Run {
        exec: String,
    },
    Batch {
        exec: String,
        batch: Inbound,
    },
    Abort {
        exec: String,
        why: String,
    },
    Done {
        exec: String,
    },
    /// A peer lacks the guest of the plan (by name and content hash).
    NeedGuest {
        exec: String,
        name: String,
        hash: String,
    },
    /// The guest's bytes, to the peer that asked.
    Guest {
        exec: String,
        name: String,
        hash: String,
        bytes: Vec<u8>,
    },
    /// A peer offered a plan by hash does not hold it: it needs the bytes.
    NeedPlan {
        exec: String,
    },
    /// A question to every master (`exec` names the question), e.g. an execution's state.
    Ask {
        exec: String,
        what: String,
        arg: String,
    },
    /// The answer to question `exec`.
    Answer {
        exec: String,
        reply: Value,
    },
    /// A step (prepare, commit, cancel) of a change to every master's registrations;
    /// `exec` is the change's id, `payload` the change (prepare only).
    Change {
        exec: String,
        step: String,
        payload: Vec<u8>,
    },
    /// A master's answer to a step of a change: its error, if any.
    Changed {
        exec: String,
        error: Option<String>,
    },
}

impl Message {
    /// The frame kind and body (the message's records and bytes move into it).
    pub fn encode(self) -> (u8, Vec<u8>) {
        let (kind, fields) = match self {
            Message::Plan(o) => (
                PLAN,
                vec![
                    Value::Str(o.exec),
                    Value::Bytes(o.plan),
                    Value::Str(o.hash),
                    Value::List(o.shards.into_iter().map(Value::Str).collect()),
                    Value::Int(o.initiator as i64),
                    Value::Str(o.user),
                    Value::Int(o.db),
                    Value::Str(o.topology),
                    Value::Str(o.registration),
                ],
            ),
            Message::Received { exec } => (RECEIVED, vec![Value::Str(exec)]),
            Message::Refused { exec, why } => (REFUSED, vec![Value::Str(exec), Value::Str(why)]),
            Message::Run { exec } => (RUN, vec![Value::Str(exec)]),
            Message::Batch { exec, batch } => (
                BATCH,
                vec![
                    Value::Str(exec),
                    Value::Int(batch.stage as i64),
                    Value::Int(batch.from as i64),
                    Value::List(batch.records),
                    batch.last_of.map_or(Value::Nil, |n| Value::Int(n as i64)),
                    Value::List(batch.errors.into_iter().map(Value::Str).collect()),
                    batch.gave_up.map_or(Value::Nil, Value::Str),
                ],
            ),
            Message::Abort { exec, why } => (ABORT, vec![Value::Str(exec), Value::Str(why)]),
            Message::Done { exec } => (DONE, vec![Value::Str(exec)]),
            Message::NeedGuest { exec, name, hash } => (
                NEED_GUEST,
                vec![Value::Str(exec), Value::Str(name), Value::Str(hash)],
            ),
            Message::Guest {
                exec,
                name,
                hash,
                bytes,
            } => (
                GUEST,
                vec![
                    Value::Str(exec),
                    Value::Str(name),
                    Value::Str(hash),
                    Value::Bytes(bytes),
                ],
            ),
            Message::NeedPlan { exec } => (NEED_PLAN, vec![Value::Str(exec)]),
            Message::Ask { exec, what, arg } => (
                ASK,
                vec![Value::Str(exec), Value::Str(what), Value::Str(arg)],
            ),
            Message::Answer { exec, reply } => (ANSWER, vec![Value::Str(exec), reply]),
            Message::Change {
                exec,
                step,
                payload,
            } => (
                CHANGE,
                vec![Value::Str(exec), Value::Str(step), Value::Bytes(payload)],
            ),
            Message::Changed { exec, error } => (
                CHANGED,
                vec![Value::Str(exec), error.map_or(Value::Nil, Value::Str)],
            ),
        };
        (kind, codec::encode_one(&Value::List(fields)))
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Message> {
        let Value::List(fields) = codec::decode(body)? else {
            bail!("a message body that is not a list");
        };
        let mut it = fields.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| anyhow!("a message with a field missing"))
        };
        let exec = text(next()?)?;
        Ok(match kind {
            PLAN => Message::Plan(Offer {
                exec,
                plan: match next()? {
                    Value::Bytes(b) => b,
                    _ => bail!("a plan that is not bytes"),
                },
                hash: text(next()?)?,
                shards: match next()? {
                    Value::List(ids) => ids.into_iter().map(text).collect::<Result<_>>()?,
                    _ => bail!("shards that are not a list"),
                },
                initiator: int(next()?)? as usize,
                user: text(next()?)?,
                db: int(next()?)?,
                topology: text(next()?)?,
                registration: text(next()?)?,
            }),
            RECEIVED => Message::Received { exec },
            REFUSED => Message::Refused {
                exec,
                why: text(next()?)?,
            },
            RUN => Message::Run { exec },
            BATCH => {
                let stage = int(next()?)? as usize;
                let from = int(next()?)? as usize;
                let records = match next()? {
                    Value::List(r) => r,
                    _ => bail!("records that are not a list"),
                };
                let last_of = match next()? {
                    Value::Nil => None,
                    v => Some(int(v)? as u64),
                };
                let errors = match next()? {
                    Value::List(e) => e.into_iter().map(text).collect::<Result<_>>()?,
                    _ => bail!("errors that are not a list"),
                };
                let gave_up = opt_text(next()?)?;
                Message::Batch {
                    exec,
                    batch: Inbound {
                        stage,
                        from,
                        records,
                        last_of,
                        errors,
                        gave_up,
                    },
                }
            }
            ABORT => Message::Abort {
                exec,
                why: text(next()?)?,
            },
            DONE => Message::Done { exec },
            NEED_GUEST => Message::NeedGuest {
                exec,
                name: text(next()?)?,
                hash: text(next()?)?,
            },
            GUEST => Message::Guest {
                exec,
                name: text(next()?)?,
                hash: text(next()?)?,
                bytes: match next()? {
                    Value::Bytes(b) => b,
                    _ => bail!("guest bytes that are not bytes"),
                },
            },
            NEED_PLAN => Message::NeedPlan { exec },
            ASK => Message::Ask {
                exec,
                what: text(next()?)?,
                arg: text(next()?)?,
            },
            ANSWER => Message::Answer {
                exec,
                reply: next()?,
            },
            CHANGE => Message::Change {
                exec,
                step: text(next()?)?,
                payload: match next()? {
                    Value::Bytes(b) => b,
                    _ => bail!("a change that is not bytes"),
                },
            },
            CHANGED => Message::Changed {
                exec,
                error: opt_text(next()?)?,
            },
            other => bail!("an unknown message kind {other}"),
        })
    }
}

/// A field that is a string (of a message, or of a value a message carries).
pub fn text(v: Value) -> Result<String> {
    match v {
        Value::Str(s) => Ok(s),
        _ => bail!("a message field that is not a string"),
    }
}

/// A field that is a string or nil.
pub fn opt_text(v: Value) -> Result<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        v => text(v).map(Some),
    }
}

fn int(v: Value) -> Result<i64> {
    match v {
        Value::Int(i) if i >= 0 => Ok(i),
        _ => bail!("a message field that is not a count"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(m: Message) -> Message {
        let (kind, body) = m.encode();
        Message::decode(kind, &body).unwrap()
    }

    #[test]
    fn messages_read_back() {
        let m = round(Message::Plan(Offer {
            exec: "e-1".into(),
            plan: vec![1, 2, 3],
            hash: "h".into(),
            shards: vec!["a".into(), "b".into()],
            initiator: 1,
            user: "default".into(),
            db: 0,
            topology: "f00d".into(),
            registration: "r-1".into(),
        }));
        let Message::Plan(o) = m else {
            panic!("not a plan");
        };
        assert_eq!((o.plan, o.initiator, o.shards.len()), (vec![1, 2, 3], 1, 2));
        let m = round(Message::Batch {
            exec: "e-1".into(),
            batch: Inbound {
                stage: 2,
                from: 1,
                records: vec![Value::Int(5), Value::str("x")],
                last_of: Some(3),
                errors: vec!["oops".into()],
                gave_up: Some("why".into()),
            },
        });
        let Message::Batch { batch, .. } = m else {
            panic!("not a batch");
        };
        assert_eq!((batch.stage, batch.from, batch.last_of), (2, 1, Some(3)));
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.errors, vec!["oops".to_string()]);
        assert!(
            matches!(round(Message::Refused { exec: "e".into(), why: "no".into() }),
            Message::Refused { why, .. } if why == "no")
        );
        assert!(matches!(round(Message::Done { exec: "e".into() }),
            Message::Done { exec } if exec == "e"));
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(Message::decode(PLAN, b"").is_err());
        assert!(
            Message::decode(99, &codec::encode_one(&Value::List(vec![Value::str("e")]))).is_err()
        );
        assert!(Message::decode(
            BATCH,
            &codec::encode_one(&Value::List(vec![Value::str("e")]))
        )
        .is_err());
    }
}
