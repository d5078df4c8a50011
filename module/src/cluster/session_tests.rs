//! The link protocol over an in-memory link that drops, duplicates, delays and reorders
//! frames and their answers: everything sent arrives exactly once, in order.

use super::*;

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How badly the link behaves, in percent per message.
#[derive(Clone, Copy)]
struct Weather {
    drop: u64,
    dup: u64,
    /// Up to this many ticks of delay (random delays reorder).
    delay: u64,
}

struct Wire<T> {
    in_transit: Vec<(u64, T)>,
}

impl<T: Clone> Wire<T> {
    fn new() -> Self {
        Wire {
            in_transit: Vec::new(),
        }
    }
    fn send(&mut self, now: u64, item: T, w: Weather, rng: &mut Rng) {
        if rng.chance(w.drop) {
            return;
        }
        let copies = if rng.chance(w.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = now + 1 + rng.below(w.delay + 1);
            self.in_transit.push((at, item.clone()));
        }
    }
    fn arrived(&mut self, now: u64) -> Vec<T> {
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_transit.drain(..).partition(|(at, _)| *at <= now);
        self.in_transit = later;
        due.into_iter().map(|(_, t)| t).collect()
    }
}

struct Receiver {
    inlet: Inlet,
    inc: String,
    queue: VecDeque<Vec<u8>>,
    capacity: usize,
    delivered: Vec<Vec<u8>>,
    restarts_seen: usize,
}

impl Receiver {
    fn new(inc: &str, capacity: usize) -> Self {
        Receiver {
            inlet: Inlet::default(),
            inc: inc.into(),
            queue: VecDeque::new(),
            capacity,
            delivered: Vec::new(),
            restarts_seen: 0,
        }
    }
    fn take(&mut self, sender_inc: &str, to_inc: &str, seq: u64, body: Vec<u8>) -> Ack {
        if to_inc != self.inc {
            return Ack::Stale;
        }
        let room = self.queue.len() < self.capacity;
        let admit = self.inlet.admit("sender", sender_inc, seq, room);
        if admit.sender_restarted {
            self.restarts_seen += 1;
        }
        if admit.ack == Ack::Ok {
            self.queue.push_back(body);
        }
        admit.ack
    }
    /// The layer above drains a little every tick.
    fn drain(&mut self, n: usize) {
        for _ in 0..n {
            match self.queue.pop_front() {
                Some(b) => self.delivered.push(b),
                None => break,
            }
        }
    }
}

/// A frame on the wire: (sender incarnation, receiver incarnation, seq, body).
type Sent = (String, String, u64, Vec<u8>);

/// Sends `n` frames over the link and runs until all are acknowledged.
fn run(seed: u64, n: usize, w: Weather) -> Receiver {
    let mut rng = Rng(seed);
    let mut out = Outbox::new();
    let mut rx = Receiver::new("rx", 4);
    let mut wire: Wire<Sent> = Wire::new();
    let mut answers: Wire<(u64, Ack)> = Wire::new();
    let mut pushed = 0;
    let mut idle = 0;
    let mut last_len = usize::MAX;
    for now in 0..200_000u64 {
        if pushed < n && rng.chance(60) {
            out.push(format!("frame {pushed}").into_bytes());
            pushed += 1;
        }
        for (seq, frame) in out.take_unsent(3, usize::MAX) {
            let item = ("tx".to_string(), "rx".to_string(), seq, frame.clone());
            wire.send(now, item, w, &mut rng);
        }
        for (si, ri, seq, body) in wire.arrived(now) {
            let ack = rx.take(&si, &ri, seq, body);
            answers.send(now, (seq, ack), w, &mut rng);
        }
        for (seq, ack) in answers.arrived(now) {
            assert!(out.answer(seq, ack), "no restart in this run");
        }
        rx.drain(if rng.chance(50) { 1 } else { 0 });
        // Answers overdue: the link thread's read timeout.
        if out.len() == last_len && !out.is_empty() {
            idle += 1;
            if idle > 20 {
                out.resend_all();
                idle = 0;
            }
        } else {
            idle = 0;
            last_len = out.len();
        }
        if pushed == n && out.is_empty() {
            rx.drain(usize::MAX);
            return rx;
        }
    }
    panic!("the link did not deliver everything (seed {seed})");
}

fn expected(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("frame {i}").into_bytes()).collect()
}

#[test]
fn a_perfect_link_delivers_in_order() {
    let calm = Weather {
        drop: 0,
        dup: 0,
        delay: 0,
    };
    assert_eq!(run(7, 500, calm).delivered, expected(500));
}

#[test]
fn a_lossy_duplicating_reordering_link_delivers_everything_once_in_order() {
    let storm = Weather {
        drop: 20,
        dup: 20,
        delay: 6,
    };
    for seed in 1..=40u64 {
        let rx = run(seed * 7919, 300, storm);
        assert_eq!(rx.delivered, expected(300), "seed {seed}");
        assert_eq!(rx.restarts_seen, 0);
    }
}

#[test]
fn a_full_receiver_pushes_back_without_loss() {
    // Capacity 4 and a slow drain: most frames meet BUSY at first.
    let calm = Weather {
        drop: 0,
        dup: 0,
        delay: 2,
    };
    assert_eq!(run(99, 1000, calm).delivered, expected(1000));
}

/// Every unsent frame of `out`, with its sequence number, as the wire would carry it.
fn put_on_wire(out: &mut Outbox) -> Vec<(u64, Vec<u8>)> {
    out.take_unsent(usize::MAX, usize::MAX)
        .into_iter()
        .map(|(s, f)| (s, f.clone()))
        .collect()
}

#[test]
fn a_reconnect_resends_and_duplicates_are_dropped() {
    let mut out = Outbox::new();
    let mut rx = Receiver::new("rx", 100);
    for i in 0..5 {
        out.push(vec![i]);
    }
    let sent = put_on_wire(&mut out);
    // The receiver got them all, but the answers were lost with the connection.
    for (seq, f) in &sent {
        assert_eq!(rx.take("a", "rx", *seq, f.clone()), Ack::Ok);
    }
    out.resend_all();
    assert!(out.has_unsent());
    let again = put_on_wire(&mut out);
    for (seq, f) in again {
        let ack = rx.take("a", "rx", seq, f);
        assert_eq!(ack, Ack::Dup);
        assert!(out.answer(seq, ack));
    }
    assert!(out.is_empty());
    assert_eq!(out.bytes(), 0);
    rx.drain(usize::MAX);
    assert_eq!(rx.delivered, (0..5).map(|i| vec![i]).collect::<Vec<_>>());
}

#[test]
fn a_restarted_receiver_answers_stale_and_the_window_starts_over() {
    let mut out = Outbox::new();
    out.push(b"old".to_vec());
    out.push(b"old too".to_vec());
    let mut rx = Receiver::new("rx2", 10);
    let (seq, f) = out.take_unsent(1, usize::MAX).pop().unwrap();
    let ack = rx.take("a", "rx1", seq, f.clone());
    assert_eq!(ack, Ack::Stale);
    assert!(!out.answer(seq, ack));
    // The link learns the new incarnation: what was meant for the old life is given up.
    assert_eq!(out.restart(), 2);
    out.push(b"new".to_vec());
    let (seq, f) = out.take_unsent(1, usize::MAX).pop().unwrap();
    assert_eq!(seq, 0);
    assert_eq!(rx.take("a", "rx2", seq, f.clone()), Ack::Ok);
    assert!(out.answer(seq, Ack::Ok));
    assert!(out.is_empty());
}

#[test]
fn a_restarted_sender_is_noticed_and_starts_at_zero() {
    let mut inlet = Inlet::default();
    assert_eq!(inlet.admit("s", "inc1", 0, true).ack, Ack::Ok);
    assert_eq!(inlet.admit("s", "inc1", 1, true).ack, Ack::Ok);
    let again = inlet.admit("s", "inc2", 0, true);
    assert_eq!(
        again,
        Admit {
            ack: Ack::Ok,
            sender_restarted: true
        }
    );
    assert_eq!(inlet.incarnation_of("s"), Some("inc2"));
    // Frames of another sender are counted apart.
    assert_eq!(inlet.admit("t", "x", 0, true).ack, Ack::Ok);
    assert_eq!(inlet.admit("t", "x", 2, true).ack, Ack::Busy);
    assert_eq!(inlet.admit("t", "x", 0, true).ack, Ack::Dup);
}

#[test]
fn batches_respect_the_byte_budget_but_always_move() {
    let mut out = Outbox::new();
    out.push(vec![0; 600]);
    out.push(vec![0; 600]);
    out.push(vec![0; 10]);
    assert_eq!(out.take_unsent(10, 1000).len(), 1);
    assert_eq!(
        out.take_unsent(10, 100).len(),
        1,
        "a big frame still goes alone"
    );
    assert_eq!(out.take_unsent(10, 100).len(), 1);
    assert!(!out.has_unsent());
    assert_eq!(out.bytes(), 1210);
}
