//! The link threads: one RESP connection from this master to every other master.
//!
//! Producers (pool workers, the main thread) hand a peer a frame with [`Link::send`] and
//! go on; they never write to a socket. Each peer has a thread that owns its connection
//! (made with the `redis` crate: RESP framing, AUTH, timeouts), greets the peer with
//! RG.HELLO to learn its incarnation, and pipelines the peer's [`Outbox`] as RG.INNERMSG
//! commands whose replies are the acks ([`crate::cluster::session`]).
//!
//! What stays the same whatever the network does: frames to a peer arrive once and in
//! order while the peer keeps its incarnation; a dropped connection is made again and
//! what was unacknowledged is resent. What the layer above is told ([`Event`]): a peer
//! that restarted (frames for its previous life are given up) and a peer unreachable
//! for SendMsgRetries reconnect attempts (its frames stay queued for when it comes back,
//! but new frames are refused until then, so nothing waits on it).
//!
//! The window of unacknowledged bytes per peer is bounded: a producer that finds it full
//! waits for acks (never for anything that itself waits on a producer: receivers only
//! copy frames into a queue and reply).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::frame;
use super::session::{Ack, Outbox};

/// The wire protocol version RG.HELLO exchanges.
pub const PROTOCOL: i64 = 1;
/// Most frames in one pipelined write.
const PIPELINE_FRAMES: usize = 64;
/// About the most bytes in one pipelined write.
const PIPELINE_BYTES: usize = 8 << 20;
/// How long a peer may take to answer before the connection is made again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a producer waits for room in a peer's window.
const FULL_WINDOW_WAIT: Duration = Duration::from_secs(10);
/// How often an idle link checks that its peer is still the process it knows.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// What the link tells the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer answered RG.HELLO with a new incarnation; `lost` frames meant for its
    /// previous life were given up.
    Restarted { peer: String, lost: usize },
    /// The peer did not answer for SendMsgRetries attempts.
    Unreachable { peer: String, why: String },
    /// The peer answers again.
    Reachable { peer: String },
}

/// Who this link speaks as, and how it authenticates.
#[derive(Clone, Default)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Option<String>,
}

pub struct Settings {
    pub me: String,
    pub incarnation: String,
    /// ClusterSecret: every frame carries an HMAC under it.
    pub secret: Option<Vec<u8>>,
    /// Unacknowledged bytes per peer before producers wait.
    pub window_bytes: usize,
    /// Reconnect attempts before a peer is unreachable (0: never).
    pub retries: fn() -> u64,
}

/// Counters a user can read (RG.INFOCLUSTER).
#[derive(Default)]
pub struct Counters {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Connections that broke with frames on the wire (sent again after reconnecting).
    pub broken: AtomicU64,
}

struct PeerState {
    out: Outbox,
    /// The incarnation learnt from RG.HELLO.
    incarnation: Option<String>,
    unreachable: bool,
    addr: (String, u16),
}

struct Peer {
    id: String,
    state: Mutex<PeerState>,
    /// Signalled when frames are queued (for the thread) and when acks free the window
    /// (for producers).
    cv: Condvar,
    stop: AtomicBool,
    counters: Counters,
}

/// The links of this master to the others.
pub struct Link {
    settings: Arc<Settings>,
    credentials: Arc<Mutex<Credentials>>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    events: Arc<dyn Fn(Event) + Send + Sync>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere was caught; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    pub fn new(settings: Settings, events: Arc<dyn Fn(Event) + Send + Sync>) -> Link {
        Link {
            settings: Arc::new(settings),
            credentials: Arc::new(Mutex::new(Credentials::default())),
            peers: Mutex::new(HashMap::new()),
            events,
        }
    }

    pub fn incarnation(&self) -> &str {
        &self.settings.incarnation
    }

    /// The credentials used from the next connection on.
    pub fn set_credentials(&self, c: Credentials) {
        *lock(&self.credentials) = c;
    }

    /// Keeps one link to each of `peers` (id, ip, port): new ones start, moved ones
    /// reconnect, gone ones stop.
    pub fn sync_peers(&self, peers: &[(String, String, u16)]) {
        let mut map = lock(&self.peers);
        map.retain(|id, peer| {
            let keep = peers.iter().any(|(p, _, _)| p == id);
            if !keep {
                peer.stop.store(true, Ordering::Relaxed);
                peer.cv.notify_all();
            }
            keep
        });
        for (id, ip, port) in peers {
            if id == &self.settings.me {
                continue;
            }
            if let Some(peer) = map.get(id) {
                lock(&peer.state).addr = (ip.clone(), *port);
                continue;
            }
            let peer = Arc::new(Peer {
                id: id.clone(),
                state: Mutex::new(PeerState {
                    out: Outbox::new(),
                    incarnation: None,
                    unreachable: false,
                    addr: (ip.clone(), *port),
                }),
                cv: Condvar::new(),
                stop: AtomicBool::new(false),
                counters: Counters::default(),
            });
            map.insert(id.clone(), peer.clone());
            let worker = Worker {
                peer,
                settings: self.settings.clone(),
                credentials: self.credentials.clone(),
                events: self.events.clone(),
            };
            let spawned = thread::Builder::new()
                .name("gears-link".into())
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                (self.events)(Event::Unreachable {
                    peer: id.clone(),
                    why: format!("no thread for the link: {e}"),
                });
            }
        }
    }

    /// Queues a frame of `kind` with `body` to `peer`. Waits while the peer's window is
    /// full (10 s at most); refuses at once when the peer is unknown or unreachable.
    pub fn send(&self, peer: &str, kind: u8, body: &[u8]) -> Result<()> {
        let p = lock(&self.peers)
            .get(peer)
            .cloned()
            .ok_or_else(|| anyhow!("shard {peer} is not a master of this cluster"))?;
        let s = &self.settings;
        let f = frame::build(kind, &s.me, &s.incarnation, body, s.secret.is_some());
        let mut st = lock(&p.state);
        let deadline = std::time::Instant::now() + FULL_WINDOW_WAIT;
        loop {
            if p.stop.load(Ordering::Relaxed) {
                bail!("shard {peer} left the cluster");
            }
            if st.unreachable {
                bail!("shard {peer} is unreachable");
            }
            if st.out.is_empty() || st.out.bytes() + f.len() <= s.window_bytes {
                break;
            }
            // Bounded, so no thread waits for ever on a peer that stopped taking frames.
            if std::time::Instant::now() >= deadline {
                bail!("shard {peer} took no frame for {FULL_WINDOW_WAIT:?}");
            }
            st =
                p.cv.wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
        }
        st.out.push(f);
        drop(st);
        p.cv.notify_all();
        Ok(())
    }

    /// Per peer: its incarnation (when known) and the frames not yet acknowledged.
    pub fn peer_state(&self, peer: &str) -> Option<(Option<String>, usize)> {
        let p = lock(&self.peers).get(peer).cloned()?;
        let st = lock(&p.state);
        Some((st.incarnation.clone(), st.out.len()))
    }

    /// Frames not yet acknowledged, over all links.
    pub fn pending(&self) -> usize {
        let peers = lock(&self.peers);
        peers.values().map(|p| lock(&p.state).out.len()).sum()
    }

    /// Frames and bytes sent so far, and connections broken mid-send, over all links.
    pub fn totals(&self) -> (u64, u64, u64) {
        let peers = lock(&self.peers);
        peers.values().fold((0, 0, 0), |(f, b, r), p| {
            (
                f + p.counters.frames_sent.load(Ordering::Relaxed),
                b + p.counters.bytes_sent.load(Ordering::Relaxed),
                r + p.counters.broken.load(Ordering::Relaxed),
            )
        })
    }
}

/// The thread of one peer.
struct Worker {
    peer: Arc<Peer>,
    settings: Arc<Settings>,
    credentials: Arc<Mutex<Credentials>>,
    events: Arc<dyn Fn(Event) + Send + Sync>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.peer.stop.load(Ordering::Relaxed)
    }

    fn run(self) {
        let mut failures: u64 = 0;
        let mut backoff = Duration::from_millis(100);
        while !self.stopped() {
            let outcome = match self.connect() {
                Ok(conn) => {
                    failures = 0;
                    backoff = Duration::from_millis(100);
                    self.pump(conn)
                }
                Err(e) => Err(e),
            };
            if self.stopped() {
                break;
            }
            if let Err(e) = outcome {
                failures += 1;
                let retries = (self.settings.retries)();
                if retries > 0 && failures >= retries {
                    let mut st = lock(&self.peer.state);
                    if !st.unreachable {
                        st.unreachable = true;
                        drop(st);
                        self.peer.cv.notify_all();
                        (self.events)(Event::Unreachable {
                            peer: self.peer.id.clone(),
                            why: format!("{e:#}"),
                        });
                    }
                }
            }
            // Wait before trying again (queued frames do not hurry it), waking early
            // only to stop.
            let until = std::time::Instant::now() + backoff;
            while !self.stopped() && std::time::Instant::now() < until {
                thread::sleep(Duration::from_millis(20));
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Connects and greets the peer; a new incarnation gives up the old window.
    fn connect(&self) -> Result<redis::Connection> {
        let (ip, port) = lock(&self.peer.state).addr.clone();
        let creds = lock(&self.credentials).clone();
        let mut redis_info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(user) = creds.user {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = creds.password {
            redis_info = redis_info.set_password(password);
        }
        let info =
            redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(ip, port))?
                .set_redis_settings(redis_info);
        let client = redis::Client::open(info)?;
        let mut conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        conn.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let inc = self.hello(&mut conn)?;
        let id = self.peer.id.clone();
        let mut st = lock(&self.peer.state);
        let restarted = st.incarnation.as_ref().is_some_and(|old| *old != inc);
        let lost = if restarted { st.out.restart() } else { 0 };
        st.incarnation = Some(inc);
        st.out.resend_all();
        let was_unreachable = std::mem::replace(&mut st.unreachable, false);
        drop(st);
        self.peer.cv.notify_all();
        if restarted {
            (self.events)(Event::Restarted {
                peer: id.clone(),
                lost,
            });
        }
        if was_unreachable {
            (self.events)(Event::Reachable { peer: id });
        }
        Ok(conn)
    }

    /// Greets the peer: checks it is the node expected and speaks this protocol; returns
    /// its incarnation.
    fn hello(&self, conn: &mut redis::Connection) -> Result<String> {
        let s = &self.settings;
        let hello: Vec<redis::Value> = redis::cmd("RG.HELLO")
            .arg(&s.me)
            .arg(&s.incarnation)
            .arg(PROTOCOL)
            .query(conn)?;
        let text = |i: usize| -> Result<String> {
            match hello.get(i) {
                Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
                Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
                Some(redis::Value::Int(n)) => Ok(n.to_string()),
                _ => bail!("RG.HELLO answered without an id, an incarnation and a version"),
            }
        };
        let (id, inc, proto) = (text(0)?, text(1)?, text(2)?);
        if id != self.peer.id {
            bail!(
                "shard {} is now node {id}, not the peer expected",
                self.peer.id
            );
        }
        if proto != PROTOCOL.to_string() {
            bail!("shard {id} speaks link protocol {proto}, this one {PROTOCOL}");
        }
        Ok(inc)
    }

    /// Sends what is queued until the connection fails or the link stops.
    fn pump(&self, mut conn: redis::Connection) -> Result<()> {
        let secret = self.settings.secret.as_deref();
        let mut busy_wait = Duration::from_millis(1);
        loop {
            let (inc, batch) = {
                let mut st = lock(&self.peer.state);
                let mut waited = std::time::Instant::now();
                while !st.out.has_unsent() && !self.stopped() {
                    st = self
                        .peer
                        .cv
                        .wait_timeout(st, HEARTBEAT)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if !st.out.has_unsent() && waited.elapsed() >= HEARTBEAT {
                        // Nothing to send: make sure the peer is still the process we
                        // know, so a restart ends the runs it was in at once.
                        let known = st.incarnation.clone();
                        drop(st);
                        let inc = self.hello(&mut conn)?;
                        if known.as_deref() != Some(inc.as_str()) {
                            bail!("shard {} restarted", self.peer.id);
                        }
                        st = lock(&self.peer.state);
                        waited = std::time::Instant::now();
                    }
                }
                if self.stopped() {
                    return Ok(());
                }
                let inc = st.incarnation.clone().unwrap_or_default();
                let batch: Vec<(u64, Vec<u8>)> = st
                    .out
                    .take_unsent(PIPELINE_FRAMES, PIPELINE_BYTES)
                    .into_iter()
                    .map(|(seq, f)| {
                        frame::stamp(f, &inc, seq, secret);
                        (seq, f.clone())
                    })
                    .collect();
                (inc, batch)
            };
            let mut pipe = redis::pipe();
            for (_, f) in &batch {
                pipe.cmd("RG.INNERMSG").arg(f.as_slice());
            }
            let replies: Vec<redis::Value> = match pipe.query(&mut conn) {
                Ok(r) => r,
                Err(e) => {
                    lock(&self.peer.state).out.resend_all();
                    self.peer.counters.broken.fetch_add(1, Ordering::Relaxed);
                    return Err(anyhow!("shard {}: {e}", self.peer.id));
                }
            };
            let counters = &self.peer.counters;
            counters
                .frames_sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let bytes: usize = batch.iter().map(|(_, f)| f.len()).sum();
            counters
                .bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
            let mut busy = false;
            let mut stale = false;
            {
                let mut st = lock(&self.peer.state);
                for ((seq, _), reply) in batch.iter().zip(&replies) {
                    let ack = match reply {
                        redis::Value::SimpleString(s) => Ack::parse(s),
                        redis::Value::Okay => Some(Ack::Ok),
                        _ => None,
                    };
                    let Some(ack) = ack else {
                        st.out.resend_all();
                        bail!(
                            "shard {}: an RG.INNERMSG answer that is no ack",
                            self.peer.id
                        );
                    };
                    busy |= ack == Ack::Busy;
                    if !st.out.answer(*seq, ack) {
                        stale = true;
                        break;
                    }
                }
                if batch.len() != replies.len() {
                    st.out.resend_all();
                }
            }
            self.peer.cv.notify_all();
            if stale {
                // The peer restarted under us: greet it again to learn its new life.
                bail!(
                    "shard {} restarted (incarnation {inc} is gone)",
                    self.peer.id
                );
            }
            if busy {
                thread::sleep(busy_wait);
                busy_wait = (busy_wait * 2).min(Duration::from_millis(100));
            } else {
                busy_wait = Duration::from_millis(1);
            }
        }
    }
}
