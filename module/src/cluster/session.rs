//! Reliable, ordered delivery over the shard link: what the sender keeps ([`Outbox`]) and
//! what the receiver checks ([`Inlet`]). No sockets here; the link threads and the
//! RG.INNERMSG handler drive these, and the tests drive them over a lossy in-memory link.
//!
//! The receiver takes frames of each sender strictly in sequence: the next expected
//! frame is accepted (OK) when its queue has room, an earlier one is a duplicate (DUP),
//! and anything else, a frame after a gap or one that finds the queue full, is refused
//! (BUSY) and sent again later. So an OK for frame `s` means every frame up to `s` was
//! accepted (acks are cumulative), and the sender goes back to the first refused frame
//! and resends from there (go-back-N). A reconnect resends everything not yet
//! acknowledged; de-duplication makes that invisible. Sequences are per pair of
//! incarnations: a restarted receiver (STALE) or sender (a new incarnation seen by the
//! receiver) starts at 0, and what was in flight is reported lost to the layer above.

use std::collections::{HashMap, VecDeque};

/// The receiver's answer to one frame: the reply to RG.INNERMSG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Accepted into the receiver's queue.
    Ok,
    /// Already accepted earlier.
    Dup,
    /// Not accepted now (queue full, or an earlier frame is missing): send it again.
    Busy,
    /// Meant for an earlier incarnation of the receiver.
    Stale,
}

impl Ack {
    pub fn as_str(self) -> &'static str {
        match self {
            Ack::Ok => "OK",
            Ack::Dup => "DUP",
            Ack::Busy => "BUSY",
            Ack::Stale => "STALE",
        }
    }

    pub fn parse(s: &str) -> Option<Ack> {
        Some(match s {
            "OK" => Ack::Ok,
            "DUP" => Ack::Dup,
            "BUSY" => Ack::Busy,
            "STALE" => Ack::Stale,
            _ => return None,
        })
    }
}

/// The frames to one peer that it has not acknowledged yet, oldest first.
pub struct Outbox {
    frames: VecDeque<Vec<u8>>,
    /// The sequence number of `frames[0]`.
    base: u64,
    /// How many frames from the front are on the wire (sent, no answer yet).
    in_flight: usize,
    bytes: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            frames: VecDeque::new(),
            base: 0,
            in_flight: 0,
            bytes: 0,
        }
    }

    /// Queues a frame; it gets the next sequence number.
    pub fn push(&mut self, frame: Vec<u8>) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Bytes not yet acknowledged (the window the producers are held to).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames not yet acknowledged.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether some frame waits to be sent.
    pub fn has_unsent(&self) -> bool {
        self.in_flight < self.frames.len()
    }

    /// The next frames to put on the wire, at most `max_frames` and about `max_bytes`
    /// (at least one), with their sequence numbers; they count as in flight.
    pub fn take_unsent(&mut self, max_frames: usize, max_bytes: usize) -> Vec<(u64, &mut Vec<u8>)> {
        let start = self.in_flight;
        let mut n = 0;
        let mut bytes = 0;
        for frame in self.frames.iter().skip(start) {
            if n >= max_frames.max(1) || (n > 0 && bytes + frame.len() > max_bytes) {
                break;
            }
            bytes += frame.len();
            n += 1;
        }
        self.in_flight += n;
        let base = self.base;
        self.frames
            .iter_mut()
            .enumerate()
            .skip(start)
            .take(n)
            .map(|(i, f)| (base + i as u64, f))
            .collect()
    }

    /// The receiver answered frame `seq`. Returns false on STALE: the peer restarted and
    /// the caller must learn its new incarnation (and [`Outbox::restart`]).
    pub fn answer(&mut self, seq: u64, ack: Ack) -> bool {
        match ack {
            Ack::Ok | Ack::Dup => {
                // Cumulative: the receiver takes frames only in order.
                while self.base <= seq && !self.frames.is_empty() {
                    if let Some(f) = self.frames.pop_front() {
                        self.bytes -= f.len();
                    }
                    self.base += 1;
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
            Ack::Busy => {
                // Go back: `seq` and everything after it is sent again.
                if seq >= self.base {
                    let i = (seq - self.base) as usize;
                    self.in_flight = self.in_flight.min(i);
                }
            }
            Ack::Stale => return false,
        }
        true
    }

    /// The connection broke or answers are overdue: whatever was on the wire is sent
    /// again (the receiver drops what it already has as DUP).
    pub fn resend_all(&mut self) {
        self.in_flight = 0;
    }

    /// The peer has a new incarnation: sequences restart at 0 and the frames meant for
    /// its previous life are given up; returns how many.
    pub fn restart(&mut self) -> usize {
        let lost = self.frames.len();
        self.frames.clear();
        self.bytes = 0;
        self.base = 0;
        self.in_flight = 0;
        lost
    }
}

/// What the receiver does with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admit {
    pub ack: Ack,
    /// The sender has a new incarnation (it restarted): what came from its previous life
    /// will never be completed.
    pub sender_restarted: bool,
}

/// The receiver's side: the next expected sequence number per sender.
#[derive(Default)]
pub struct Inlet {
    senders: HashMap<String, (String, u64)>,
}

impl Inlet {
    /// Decides on frame `seq` of `sender` in incarnation `sender_inc`; `room` says whether
    /// the inbound queue can take it. An accepted frame must then be queued.
    pub fn admit(&mut self, sender: &str, sender_inc: &str, seq: u64, room: bool) -> Admit {
        let mut sender_restarted = false;
        let entry = self
            .senders
            .entry(sender.to_string())
            .or_insert_with(|| (sender_inc.to_string(), 0));
        if entry.0 != sender_inc {
            *entry = (sender_inc.to_string(), 0);
            sender_restarted = true;
        }
        let ack = if seq < entry.1 {
            Ack::Dup
        } else if seq > entry.1 || !room {
            Ack::Busy
        } else {
            entry.1 += 1;
            Ack::Ok
        };
        Admit {
            ack,
            sender_restarted,
        }
    }

    /// The incarnation last seen of `sender`.
    pub fn incarnation_of(&self, sender: &str) -> Option<&str> {
        self.senders.get(sender).map(|(inc, _)| inc.as_str())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
