//! Asking every other master something and gathering the answers: what the execution
//! commands do cluster-wide (RG.GETEXECUTION `id CLUSTER`, RG.ABORTEXECUTION and
//! RG.DROPEXECUTION on every shard).
//!
//! A question goes to every other master as an ASK frame; each answers with an ANSWER
//! frame. The asker's `done` runs once every master answered, or when
//! ExecutionMaxIdleTime has passed (then with the answers it has), on the dispatcher
//! thread. What a question means is given by the layer above ([`set_answerer`]), so
//! this layer knows no command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{cluster, lock, Cluster};
use crate::cluster::messages::Message;
use crate::config::{self, Key};
use crate::engine::value::Value;
use crate::globals::globals;

/// Runs with every master's answer, (shard id, answer), this shard's first.
pub type Done = Box<dyn FnOnce(Vec<(String, Value)>) + Send>;

/// Answers a question (`what`, `arg`) here.
pub type Answerer = fn(&str, &str) -> Value;

static ANSWERER: OnceLock<Answerer> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);

struct Pending {
    waiting: Vec<String>,
    answers: Vec<(String, Value)>,
    deadline: Instant,
    done: Done,
}

static PENDING: Mutex<Option<HashMap<String, Pending>>> = Mutex::new(None);

/// What questions mean here (set once, at load).
pub fn set_answerer(answerer: Answerer) {
    let _ = ANSWERER.set(answerer);
}

/// How this layer answers one of its own questions.
type Own = fn() -> Value;

/// Questions this layer answers itself (`what`, how), set at load.
static OWN: Mutex<Vec<(&'static str, Own)>> = Mutex::new(Vec::new());

/// Answers question `what` with `how` here (a question of the cluster layer itself).
pub fn answer_with(what: &'static str, how: Own) {
    lock(&OWN).push((what, how));
}

fn answer_here(what: &str, arg: &str) -> Value {
    let own = lock(&OWN)
        .iter()
        .find(|(w, _)| *w == what)
        .map(|(_, how)| *how);
    if let Some(how) = own {
        return how();
    }
    ANSWERER.get().map_or(Value::Nil, |f| f(what, arg))
}

/// Asks every master that owns slots `what` about `arg`; `done` gets every answer (this
/// shard's first). Without a cluster, `done` runs at once with this shard's answer alone.
pub fn ask_all(what: &str, arg: &str, done: Done) {
    ask(what, arg, false, done)
}

/// As `ask_all`, asking the masters that own no slot too.
pub fn ask_every_master(what: &str, arg: &str, done: Done) {
    ask(what, arg, true, done)
}

fn ask(what: &str, arg: &str, spare_too: bool, done: Done) {
    let mine = (globals().shard_id.clone(), answer_here(what, arg));
    let Some(c) = cluster() else {
        done(vec![mine]);
        return;
    };
    let others = c.other_masters(spare_too);
    if others.is_empty() {
        done(vec![mine]);
        return;
    }
    let req = format!("{}-ask-{}", c.me, NEXT.fetch_add(1, Ordering::Relaxed));
    let idle = config::get(Key::ExecutionMaxIdleTime).max(1) as u64;
    let ask = Message::Ask {
        exec: req.clone(),
        what: what.to_string(),
        arg: arg.to_string(),
    }
    .encode();
    let waiting: Vec<String> = others
        .into_iter()
        .filter(|peer| c.send_frame(peer, &ask).is_ok())
        .collect();
    lock(&PENDING).get_or_insert_with(HashMap::new).insert(
        req,
        Pending {
            waiting,
            answers: vec![mine],
            deadline: Instant::now() + Duration::from_millis(idle),
            done,
        },
    );
    settle();
}

/// Peer: answers a question from `from`.
pub fn on_ask(c: &Cluster, from: &str, req: String, what: &str, arg: &str) {
    let reply = answer_here(what, arg);
    let _ = c.send(from, Message::Answer { exec: req, reply });
}

/// Asker: `from` answered.
pub fn on_answer(from: &str, req: &str, reply: Value) {
    if let Some(p) = lock(&PENDING).as_mut().and_then(|m| m.get_mut(req)) {
        if let Some(i) = p.waiting.iter().position(|w| w == from) {
            p.waiting.swap_remove(i);
            p.answers.push((from.to_string(), reply));
        }
    }
    settle();
}

/// Runs the `done` of every question fully answered or past its deadline.
pub fn settle() {
    let now = Instant::now();
    let ready: Vec<Pending> = {
        let mut pending = lock(&PENDING);
        let Some(map) = pending.as_mut() else {
            return;
        };
        let keys: Vec<String> = map
            .iter()
            .filter(|(_, p)| p.waiting.is_empty() || now >= p.deadline)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| map.remove(k)).collect()
    };
    for p in ready {
        (p.done)(p.answers);
    }
}
