//! The receiving end of the shard links: what RG.INNERMSG does with a frame, and the
//! bounded queue the frames wait in until the layer above takes them.
//!
//! RG.INNERMSG runs on the main thread, so it does as little as it can: it checks the
//! frame (its MAC, that it is meant for this incarnation, its place in the sender's
//! sequence), copies the body into the queue and replies the ack. The work the frame
//! asks for happens off the main thread, on whoever takes from the queue. The queue is
//! bounded in bytes: when it is full the sender is told BUSY and sends again later.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;

use super::frame;
use super::session::{Ack, Inlet};

/// A frame taken in, for the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Frame {
        from: String,
        kind: u8,
        body: Vec<u8>,
    },
    /// `from` has a new incarnation: everything of its previous life is over. Queued in
    /// order with the frames, ahead of the first frame of its new life.
    Restarted { from: String },
}

struct Queue {
    messages: VecDeque<Message>,
    bytes: usize,
}

pub struct Receiver {
    incarnation: String,
    secret: Option<Vec<u8>>,
    capacity: usize,
    inlet: Mutex<Inlet>,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Frames accepted so far (INFO).
    received: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Receiver {
    /// A receiver for this node's `incarnation`, holding at most `capacity` bytes.
    pub fn new(incarnation: &str, secret: Option<Vec<u8>>, capacity: usize) -> Receiver {
        Receiver {
            incarnation: incarnation.to_string(),
            secret,
            capacity,
            inlet: Mutex::new(Inlet::default()),
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                bytes: 0,
            }),
            ready: Condvar::new(),
            received: AtomicU64::new(0),
        }
    }

    /// Takes one frame in; the ack is RG.INNERMSG's reply. An error means the frame is
    /// not a frame of a peer (bad bytes, a bad MAC).
    pub fn take(&self, bytes: &[u8]) -> Result<Ack> {
        let f = frame::parse(bytes, self.secret.as_deref())?;
        if f.receiver_inc != self.incarnation {
            return Ok(Ack::Stale);
        }
        // The inlet's lock is held until the frame is queued, so frames of one sender
        // enter the queue in their order.
        let mut inlet = lock(&self.inlet);
        let room = {
            let q = lock(&self.queue);
            q.messages.is_empty() || q.bytes + f.body.len() <= self.capacity
        };
        let admit = inlet.admit(f.sender, f.sender_inc, f.seq, room);
        if admit.sender_restarted || admit.ack == Ack::Ok {
            let mut q = lock(&self.queue);
            if admit.sender_restarted {
                q.messages.push_back(Message::Restarted {
                    from: f.sender.to_string(),
                });
            }
            if admit.ack == Ack::Ok {
                self.received.fetch_add(1, Ordering::Relaxed);
                q.bytes += f.body.len();
                q.messages.push_back(Message::Frame {
                    from: f.sender.to_string(),
                    kind: f.kind,
                    body: f.body.to_vec(),
                });
            }
            drop(q);
            self.ready.notify_one();
        }
        Ok(admit.ack)
    }

    /// The next message, waiting up to `wait` for one.
    pub fn next(&self, wait: Duration) -> Option<Message> {
        let mut q = lock(&self.queue);
        if q.messages.is_empty() {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let m = q.messages.pop_front()?;
        if let Message::Frame { body, .. } = &m {
            q.bytes -= body.len();
        }
        Some(m)
    }

    /// Frames accepted so far.
    pub fn frames_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The incarnation `sender` last showed, if it ever sent here.
    pub fn incarnation_of(&self, sender: &str) -> Option<String> {
        lock(&self.inlet).incarnation_of(sender).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const AI: &str = "1111111111111111111111111111111111111111";
    const ME: &str = "2222222222222222222222222222222222222222";

    fn frame(seq: u64, body: &[u8], to: &str, inc: &str) -> Vec<u8> {
        let mut f = frame::build(9, A, inc, body, false);
        frame::stamp(&mut f, to, seq, None);
        f
    }

    #[test]
    fn frames_queue_in_order_and_the_queue_pushes_back() {
        let r = Receiver::new(ME, None, 10);
        assert_eq!(r.take(&frame(0, b"12345678", ME, AI)).unwrap(), Ack::Ok);
        // Full: 8 + 8 > 10.
        assert_eq!(r.take(&frame(1, b"abcdefgh", ME, AI)).unwrap(), Ack::Busy);
        assert_eq!(r.take(&frame(0, b"12345678", ME, AI)).unwrap(), Ack::Dup);
        let m = r.next(Duration::ZERO).unwrap();
        assert_eq!(
            m,
            Message::Frame {
                from: A.into(),
                kind: 9,
                body: b"12345678".to_vec()
            }
        );
        assert_eq!(r.take(&frame(1, b"abcdefgh", ME, AI)).unwrap(), Ack::Ok);
        assert!(r.next(Duration::ZERO).is_some());
        assert!(r.next(Duration::ZERO).is_none());
    }

    #[test]
    fn frames_for_an_earlier_life_are_stale() {
        let r = Receiver::new(ME, None, 100);
        assert_eq!(r.take(&frame(0, b"x", AI, AI)).unwrap(), Ack::Stale);
        assert!(r.next(Duration::ZERO).is_none());
    }

    #[test]
    fn a_restarted_sender_is_announced_before_its_new_frames() {
        let r = Receiver::new(ME, None, 100);
        assert_eq!(r.take(&frame(0, b"a", ME, AI)).unwrap(), Ack::Ok);
        let new_inc = "3333333333333333333333333333333333333333";
        assert_eq!(r.take(&frame(0, b"b", ME, new_inc)).unwrap(), Ack::Ok);
        assert!(matches!(
            r.next(Duration::ZERO),
            Some(Message::Frame { .. })
        ));
        assert_eq!(
            r.next(Duration::ZERO),
            Some(Message::Restarted { from: A.into() })
        );
        assert!(
            matches!(r.next(Duration::ZERO), Some(Message::Frame { body, .. }) if body == b"b")
        );
        assert_eq!(r.incarnation_of(A).as_deref(), Some(new_inc));
    }

    #[test]
    fn a_secret_keeps_strangers_out() {
        let r = Receiver::new(ME, Some(b"k".to_vec()), 100);
        assert!(r.take(&frame(0, b"x", ME, AI)).is_err());
        let mut f = frame::build(9, A, AI, b"x", true);
        frame::stamp(&mut f, ME, 0, Some(b"k"));
        assert_eq!(r.take(&f).unwrap(), Ack::Ok);
    }
}
