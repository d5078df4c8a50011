//! An in-memory fake of the Redis commands guests use, answering as Redis 7 does
//! (RESP2, the protocol the host calls Redis with).

use std::collections::{BTreeMap, VecDeque};

use rmpv::Value;

use super::glob;
use super::reply::{bytes_value, Reply};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

type Bytes = Vec<u8>;

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Str(Bytes),
    /// Fields in insertion order, as a small Redis hash (listpack) keeps them.
    Hash(Vec<(Bytes, Bytes)>),
    /// Members in insertion order.
    Set(Vec<Bytes>),
    List(VecDeque<Bytes>),
    Stream(Stream),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Stream {
    entries: Vec<(StreamId, Vec<(Bytes, Bytes)>)>,
    last: StreamId,
}

type StreamId = (u64, u64);

impl Entry {
    fn type_name(&self) -> &'static str {
        match self {
            Entry::Str(_) => "string",
            Entry::Hash(_) => "hash",
            Entry::Set(_) => "set",
            Entry::List(_) => "list",
            Entry::Stream(_) => "stream",
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Entry::Hash(h) => h.is_empty(),
            Entry::Set(s) => s.is_empty(),
            Entry::List(l) => l.is_empty(),
            Entry::Str(_) | Entry::Stream(_) => false,
        }
    }
}

/// The keys of a fake Redis: strings, hashes, sets, lists and streams, their names and
/// values bytes. [`command`](Self::command) runs a command and answers as Redis would:
///
/// - strings: GET SET (NX XX GET KEEPTTL EX PX EXAT PXAT) DEL EXISTS INCR INCRBY DECR
///   DECRBY APPEND STRLEN MGET;
/// - hashes: HGET HSET HMSET HMGET HGETALL HDEL HEXISTS HLEN HINCRBY;
/// - sets: SADD SREM SMEMBERS SISMEMBER SCARD;
/// - lists: LPUSH RPUSH LPOP RPOP (with a count) LRANGE LLEN;
/// - KEYS (glob), TYPE, EXPIRE and PEXPIRE (accepted: 1 when the key exists; no key ever
///   expires), PING, XADD (`*` and explicit ids, NOMKSTREAM, MAXLEN) and XLEN.
///
/// Another command is the error `ERR unknown command '<name>'`; a key of another type
/// the `WRONGTYPE` error, a wrong argument count Redis's `ERR wrong number of
/// arguments` error. Keys are kept sorted, so KEYS and the readers list them in order.
///
/// ```
/// use gears::testing::{Keyspace, Reply};
///
/// let mut ks = Keyspace::new();
/// ks.set("k", "v").hset("movie:1", "genres", "Drama,Comedy");
/// assert_eq!(ks.command(["get", "k"]), Reply::from("v"));
/// assert_eq!(ks.command(["incr", "n"]), Reply::Int(1));
/// assert_eq!(
///     ks.command(["incr", "k"]),
///     Reply::error("ERR value is not an integer or out of range")
/// );
/// assert_eq!(ks.command(["type", "movie:1"]), Reply::Status("hash".into()));
/// assert_eq!(ks.command(["nope"]), Reply::error("ERR unknown command 'nope'"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keyspace {
    keys: BTreeMap<Bytes, Entry>,
}

/// Parses an integer argument as Redis does (no sign `+`, no spaces).
fn int(arg: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.starts_with('+') && !s.is_empty())
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Reply::error(NOT_INT))
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(b.to_vec())
}

fn array<'a>(items: impl IntoIterator<Item = &'a Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(|b| bulk(b)).collect())
}

fn count(n: usize) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `Ok` or the error reply, so commands can use `?`.
type Answer = Result<Reply, Reply>;

fn answer(a: Answer) -> Reply {
    a.unwrap_or_else(|e| e)
}

/// The minimal arity of each command (the name included) and whether it is exact.
const COMMANDS: &[(&str, usize, bool)] = &[
    ("get", 2, true),
    ("set", 3, false),
    ("del", 2, false),
    ("exists", 2, false),
    ("incr", 2, true),
    ("incrby", 3, true),
    ("decr", 2, true),
    ("decrby", 3, true),
    ("append", 3, true),
    ("strlen", 2, true),
    ("mget", 2, false),
    ("hget", 3, true),
    ("hset", 4, false),
    ("hmset", 4, false),
    ("hmget", 3, false),
    ("hgetall", 2, true),
    ("hdel", 3, false),
    ("hexists", 3, true),
    ("hlen", 2, true),
    ("hincrby", 4, true),
    ("sadd", 3, false),
    ("srem", 3, false),
    ("smembers", 2, true),
    ("sismember", 3, true),
    ("scard", 2, true),
    ("lpush", 3, false),
    ("rpush", 3, false),
    ("lpop", 2, false),
    ("rpop", 2, false),
    ("lrange", 4, true),
    ("llen", 2, true),
    ("keys", 2, true),
    ("type", 2, true),
    ("expire", 3, false),
    ("pexpire", 3, false),
    ("ping", 1, false),
    ("xadd", 5, false),
    ("xlen", 2, true),
];

impl Keyspace {
    /// An empty keyspace.
    ///
    /// ```
    /// assert!(gears::testing::Keyspace::new().is_empty());
    /// ```
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// Runs a command (its name in any case) and returns Redis's reply.
    ///
    /// ```
    /// use gears::testing::{Keyspace, Reply};
    /// let mut ks = Keyspace::new();
    /// assert_eq!(ks.command(["SADD", "s", "a", "b", "a"]), Reply::Int(2));
    /// assert_eq!(ks.command(["smembers", "s"]), Reply::Array(vec!["a".into(), "b".into()]));
    /// ```
    pub fn command<I, A>(&mut self, args: I) -> Reply
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args: Vec<Bytes> = args.into_iter().map(|a| a.as_ref().to_vec()).collect();
        self.run(&args)
    }

    /// [`command`](Self::command) over arguments already collected.
    pub(crate) fn run(&mut self, args: &[Bytes]) -> Reply {
        let Some((name, rest)) = args.split_first() else {
            return Reply::error("ERR no command given");
        };
        let name = String::from_utf8_lossy(name).to_lowercase();
        let Some(&(_, arity, exact)) = COMMANDS.iter().find(|c| c.0 == name) else {
            return Reply::error(format!("ERR unknown command '{name}'"));
        };
        if args.len() < arity || (exact && args.len() != arity) {
            return wrong_args(&name);
        }
        answer(self.dispatch(&name, rest))
    }

    fn dispatch(&mut self, name: &str, a: &[Bytes]) -> Answer {
        // Every command but PING has a key (its arity says so).
        let Some(key) = a.first() else {
            return Ok(Reply::Status("PONG".into()));
        };
        match name {
            "get" => self.get_str(key).map(|v| v.map_or(Reply::Nil, bulk)),
            "set" => self.set_cmd(a),
            "del" => Ok(count(
                a.iter().filter(|k| self.keys.remove(*k).is_some()).count(),
            )),
            "exists" => Ok(count(
                a.iter().filter(|k| self.keys.contains_key(*k)).count(),
            )),
            "incr" => self.incr(key, 1),
            "decr" => self.incr(key, -1),
            "incrby" => self.incr(key, int(&a[1])?),
            "decrby" => self.incr(key, int(&a[1])?.checked_neg().ok_or(Reply::error(NOT_INT))?),
            "append" => {
                let s = self.str_mut(key)?;
                s.extend_from_slice(&a[1]);
                Ok(count(s.len()))
            }
            "strlen" => Ok(count(self.get_str(key)?.map_or(0, <[u8]>::len))),
            "mget" => Ok(Reply::Array(
                a.iter()
                    .map(|k| match self.keys.get(k) {
                        Some(Entry::Str(v)) => bulk(v),
                        _ => Reply::Nil,
                    })
                    .collect(),
            )),
            "hget" => Ok(self
                .hash(key)?
                .and_then(|h| field(h, &a[1]))
                .map_or(Reply::Nil, bulk)),
            "hset" | "hmset" => {
                if a.len().is_multiple_of(2) {
                    return Err(wrong_args(name));
                }
                let h = self.hash_mut(key)?;
                let mut added = 0;
                for fv in a[1..].chunks(2) {
                    match h.iter_mut().find(|(f, _)| *f == fv[0]) {
                        Some((_, v)) => *v = fv[1].clone(),
                        None => {
                            h.push((fv[0].clone(), fv[1].clone()));
                            added += 1;
                        }
                    }
                }
                Ok(if name == "hset" {
                    count(added)
                } else {
                    Reply::ok()
                })
            }
            "hmget" => {
                let h = self.hash(key)?;
                Ok(Reply::Array(
                    a[1..]
                        .iter()
                        .map(|f| h.and_then(|h| field(h, f)).map_or(Reply::Nil, bulk))
                        .collect(),
                ))
            }
            "hgetall" => Ok(Reply::Array(
                self.hash(key)?
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|(f, v)| [bulk(f), bulk(v)])
                    .collect(),
            )),
            "hdel" => {
                let Some(h) = self.hash_existing(key)? else {
                    return Ok(Reply::Int(0));
                };
                let before = h.len();
                h.retain(|(f, _)| !a[1..].contains(f));
                let n = before - h.len();
                self.drop_if_empty(key);
                Ok(count(n))
            }
            "hexists" => Ok(Reply::Int(i64::from(
                self.hash(key)?.and_then(|h| field(h, &a[1])).is_some(),
            ))),
            "hlen" => Ok(count(self.hash(key)?.map_or(0, <[_]>::len))),
            "hincrby" => {
                let by = int(&a[2])?;
                let h = self.hash_mut(key)?;
                let at = match h.iter().position(|(f, _)| *f == a[1]) {
                    Some(at) => at,
                    None => {
                        h.push((a[1].clone(), b"0".to_vec()));
                        h.len() - 1
                    }
                };
                let old =
                    int(&h[at].1).map_err(|_| Reply::error("ERR hash value is not an integer"))?;
                let new = old
                    .checked_add(by)
                    .ok_or_else(|| Reply::error("ERR increment or decrement would overflow"))?;
                h[at].1 = new.to_string().into_bytes();
                Ok(Reply::Int(new))
            }
            "sadd" => {
                let s = self.set_mut(key)?;
                let mut added = 0;
                for m in &a[1..] {
                    if !s.contains(m) {
                        s.push(m.clone());
                        added += 1;
                    }
                }
                Ok(count(added))
            }
            "srem" => {
                let Some(Entry::Set(s)) = self.typed_mut(key, "set")? else {
                    return Ok(Reply::Int(0));
                };
                let before = s.len();
                s.retain(|m| !a[1..].contains(m));
                let n = before - s.len();
                self.drop_if_empty(key);
                Ok(count(n))
            }
            "smembers" => Ok(array(self.set_of(key)?.unwrap_or_default())),
            "sismember" => Ok(Reply::Int(i64::from(
                self.set_of(key)?.is_some_and(|s| s.contains(&a[1])),
            ))),
            "scard" => Ok(count(self.set_of(key)?.map_or(0, <[_]>::len))),
            "lpush" | "rpush" => {
                let l = self.list_mut(key)?;
                for v in &a[1..] {
                    if name == "lpush" {
                        l.push_front(v.clone());
                    } else {
                        l.push_back(v.clone());
                    }
                }
                Ok(count(l.len()))
            }
            "lpop" | "rpop" => self.pop(name, a),
            "lrange" => {
                let (start, stop) = (int(&a[1])?, int(&a[2])?);
                let Some(Entry::List(l)) = self.typed(key, "list")? else {
                    return Ok(Reply::Array(Vec::new()));
                };
                let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
                let at = |i: i64| if i < 0 { (len + i).max(0) } else { i };
                let (start, stop) = (at(start), at(stop).min(len - 1));
                if start > stop {
                    return Ok(Reply::Array(Vec::new()));
                }
                let range = (start as usize)..=(stop as usize);
                Ok(array(l.range(range)))
            }
            "llen" => Ok(count(match self.typed(key, "list")? {
                Some(Entry::List(l)) => l.len(),
                _ => 0,
            })),
            "keys" => Ok(array(&self.keys_matching(key))),
            "type" => Ok(Reply::Status(self.type_of(key).into())),
            "expire" | "pexpire" => {
                int(&a[1])?;
                Ok(Reply::Int(i64::from(self.keys.contains_key(key))))
            }
            "ping" => Ok(bulk(key)),
            "xadd" => self.xadd(a),
            "xlen" => Ok(count(match self.typed(key, "stream")? {
                Some(Entry::Stream(s)) => s.entries.len(),
                _ => 0,
            })),
            _ => Ok(Reply::error(format!("ERR unknown command '{name}'"))),
        }
    }

    fn typed(&self, key: &[u8], kind: &str) -> Result<Option<&Entry>, Reply> {
        match self.keys.get(key) {
            Some(e) if e.type_name() != kind => Err(Reply::error(WRONGTYPE)),
            other => Ok(other),
        }
    }

    fn typed_mut(&mut self, key: &[u8], kind: &str) -> Result<Option<&mut Entry>, Reply> {
        match self.keys.get_mut(key) {
            Some(e) if e.type_name() != kind => Err(Reply::error(WRONGTYPE)),
            other => Ok(other),
        }
    }

    /// The entry of `key`, created by `new` when missing; WRONGTYPE when of another type.
    fn entry_mut(&mut self, key: &[u8], new: Entry) -> Result<&mut Entry, Reply> {
        let kind = new.type_name();
        let e = self.keys.entry(key.to_vec()).or_insert(new);
        if e.type_name() != kind {
            return Err(Reply::error(WRONGTYPE));
        }
        Ok(e)
    }

    fn drop_if_empty(&mut self, key: &[u8]) {
        if self.keys.get(key).is_some_and(Entry::is_empty) {
            self.keys.remove(key);
        }
    }

    fn get_str(&self, key: &[u8]) -> Result<Option<&[u8]>, Reply> {
        Ok(match self.typed(key, "string")? {
            Some(Entry::Str(s)) => Some(s),
            _ => None,
        })
    }

    fn str_mut(&mut self, key: &[u8]) -> Result<&mut Bytes, Reply> {
        match self.entry_mut(key, Entry::Str(Vec::new()))? {
            Entry::Str(s) => Ok(s),
            _ => Err(Reply::error(WRONGTYPE)),
        }
    }

    fn hash(&self, key: &[u8]) -> Result<Option<&[(Bytes, Bytes)]>, Reply> {
        Ok(match self.typed(key, "hash")? {
            Some(Entry::Hash(h)) => Some(h),
            _ => None,
        })
    }

    fn hash_existing(&mut self, key: &[u8]) -> Result<Option<&mut Vec<(Bytes, Bytes)>>, Reply> {
        Ok(match self.typed_mut(key, "hash")? {
            Some(Entry::Hash(h)) => Some(h),
            _ => None,
        })
    }

    fn hash_mut(&mut self, key: &[u8]) -> Result<&mut Vec<(Bytes, Bytes)>, Reply> {
        match self.entry_mut(key, Entry::Hash(Vec::new()))? {
            Entry::Hash(h) => Ok(h),
            _ => Err(Reply::error(WRONGTYPE)),
        }
    }

    fn set_of(&self, key: &[u8]) -> Result<Option<&[Bytes]>, Reply> {
        Ok(match self.typed(key, "set")? {
            Some(Entry::Set(s)) => Some(s),
            _ => None,
        })
    }

    fn set_mut(&mut self, key: &[u8]) -> Result<&mut Vec<Bytes>, Reply> {
        match self.entry_mut(key, Entry::Set(Vec::new()))? {
            Entry::Set(s) => Ok(s),
            _ => Err(Reply::error(WRONGTYPE)),
        }
    }

    fn list_mut(&mut self, key: &[u8]) -> Result<&mut VecDeque<Bytes>, Reply> {
        match self.entry_mut(key, Entry::List(VecDeque::new()))? {
            Entry::List(l) => Ok(l),
            _ => Err(Reply::error(WRONGTYPE)),
        }
    }

    fn set_cmd(&mut self, a: &[Bytes]) -> Answer {
        let (key, value) = (&a[0], &a[1]);
        let (mut nx, mut xx, mut get) = (false, false, false);
        let mut i = 2;
        while i < a.len() {
            let opt = String::from_utf8_lossy(&a[i]).to_lowercase();
            match opt.as_str() {
                "nx" => nx = true,
                "xx" => xx = true,
                "get" => get = true,
                "keepttl" => {}
                "ex" | "px" | "exat" | "pxat" => {
                    i += 1;
                    let t = a.get(i).ok_or_else(|| Reply::error(SYNTAX))?;
                    if int(t)? <= 0 {
                        return Err(Reply::error("ERR invalid expire time in 'set' command"));
                    }
                }
                _ => return Err(Reply::error(SYNTAX)),
            }
            i += 1;
        }
        if nx && xx {
            return Err(Reply::error(SYNTAX));
        }
        let old = if get {
            self.get_str(key)?.map(<[u8]>::to_vec)
        } else {
            None
        };
        let exists = self.keys.contains_key(key.as_slice());
        if (nx && exists) || (xx && !exists) {
            return Ok(if get { Reply::from(old) } else { Reply::Nil });
        }
        self.keys.insert(key.clone(), Entry::Str(value.clone()));
        Ok(if get { Reply::from(old) } else { Reply::ok() })
    }

    fn incr(&mut self, key: &[u8], by: i64) -> Answer {
        let old = match self.get_str(key)? {
            Some(s) => int(s)?,
            None => 0,
        };
        let s = self.str_mut(key)?;
        let new = old
            .checked_add(by)
            .ok_or_else(|| Reply::error("ERR increment or decrement would overflow"))?;
        *s = new.to_string().into_bytes();
        Ok(Reply::Int(new))
    }

    fn pop(&mut self, name: &str, a: &[Bytes]) -> Answer {
        let key = &a[0];
        if a.len() > 2 {
            return Err(wrong_args(name));
        }
        let n = match a.get(1) {
            Some(n) => Some(
                usize::try_from(int(n)?)
                    .map_err(|_| Reply::error("ERR value is out of range, must be positive"))?,
            ),
            None => None,
        };
        let Some(Entry::List(l)) = self.typed_mut(key, "list")? else {
            return Ok(Reply::Nil);
        };
        let mut take = || {
            if name == "lpop" {
                l.pop_front()
            } else {
                l.pop_back()
            }
        };
        let out = match n {
            None => Reply::from(take()),
            Some(n) => Reply::Array((0..n).map_while(|_| take()).map(Reply::Bulk).collect()),
        };
        self.drop_if_empty(key);
        Ok(out)
    }

    fn xadd(&mut self, a: &[Bytes]) -> Answer {
        let key = &a[0];
        let mut i = 1;
        let (mut nomkstream, mut maxlen) = (false, None);
        loop {
            let opt =
                String::from_utf8_lossy(a.get(i).ok_or_else(|| wrong_args("xadd"))?).to_lowercase();
            match opt.as_str() {
                "nomkstream" => nomkstream = true,
                "maxlen" => {
                    i += 1;
                    if matches!(a.get(i).map(Vec::as_slice), Some(b"=" | b"~")) {
                        i += 1;
                    }
                    let n = int(a.get(i).ok_or_else(|| Reply::error(SYNTAX))?)?;
                    maxlen = Some(
                        usize::try_from(n)
                            .map_err(|_| Reply::error("ERR The MAXLEN argument must be >= 0."))?,
                    );
                }
                _ => break,
            }
            i += 1;
        }
        let id = &a[i];
        let fields = &a[i + 1..];
        if fields.is_empty() || !fields.len().is_multiple_of(2) {
            return Err(wrong_args("xadd"));
        }
        if nomkstream && !self.keys.contains_key(key.as_slice()) {
            return Ok(Reply::Nil);
        }
        let Entry::Stream(s) = self.entry_mut(key, Entry::Stream(Stream::default()))? else {
            return Err(Reply::error(WRONGTYPE));
        };
        let id = next_id(id, s.last)?;
        s.last = id;
        let pairs = fields
            .chunks(2)
            .map(|fv| (fv[0].clone(), fv[1].clone()))
            .collect();
        s.entries.push((id, pairs));
        if let Some(max) = maxlen {
            let over = s.entries.len().saturating_sub(max);
            s.entries.drain(..over);
        }
        Ok(Reply::Bulk(format!("{}-{}", id.0, id.1).into_bytes()))
    }

    // -- for tests --

    /// `SET key value`.
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.set("k", "v");
    /// assert_eq!(ks.get("k"), Some(&b"v"[..]));
    /// ```
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref().to_vec();
        self.keys.insert(key.as_ref().to_vec(), Entry::Str(value));
        self
    }

    /// `HSET key field value` (a key of another type is replaced by a new hash).
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.hset("h", "f", "1").hset("h", "g", "2");
    /// assert_eq!(ks.command(["hlen", "h"]), gears::testing::Reply::Int(2));
    /// ```
    pub fn hset(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> &mut Self {
        self.replace_other(key.as_ref(), "hash");
        self.run(&[
            b"hset".to_vec(),
            key.as_ref().to_vec(),
            field.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ]);
        self
    }

    /// `SADD key member` (a key of another type is replaced by a new set).
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.sadd("s", "a").sadd("s", "a");
    /// assert_eq!(ks.members("s"), vec![b"a".to_vec()]);
    /// ```
    pub fn sadd(&mut self, key: impl AsRef<[u8]>, member: impl AsRef<[u8]>) -> &mut Self {
        self.replace_other(key.as_ref(), "set");
        self.run(&[
            b"sadd".to_vec(),
            key.as_ref().to_vec(),
            member.as_ref().to_vec(),
        ]);
        self
    }

    /// `RPUSH key value` (a key of another type is replaced by a new list).
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.rpush("l", "a").rpush("l", "b");
    /// assert_eq!(ks.members("l"), vec![b"a".to_vec(), b"b".to_vec()]);
    /// ```
    pub fn rpush(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.replace_other(key.as_ref(), "list");
        self.run(&[
            b"rpush".to_vec(),
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ]);
        self
    }

    /// The StreamReader records of a stream's messages, oldest first:
    /// `{key, id, value: {field: value}}` (empty when `key` is not a stream).
    ///
    /// ```
    /// use gears::{testing::Keyspace, StreamRecord};
    /// let mut ks = Keyspace::new();
    /// ks.command(["xadd", "s", "1-1", "user", "ann"]);
    /// let m: StreamRecord = gears::from_value(&ks.stream_records("s")[0]).unwrap();
    /// assert_eq!((m.id.as_str(), m.get("user")), ("1-1", Some("ann")));
    /// ```
    pub fn stream_records(&self, key: impl AsRef<[u8]>) -> Vec<Value> {
        let key = key.as_ref();
        let Some(Entry::Stream(s)) = self.keys.get(key) else {
            return Vec::new();
        };
        let name = Value::from(String::from_utf8_lossy(key).into_owned());
        s.entries
            .iter()
            .map(|((ms, seq), pairs)| {
                let fields = pairs
                    .iter()
                    .map(|(f, v)| (bytes_value(f), bytes_value(v)))
                    .collect();
                Value::Map(vec![
                    (Value::from("key"), name.clone()),
                    (Value::from("id"), Value::from(format!("{ms}-{seq}"))),
                    (Value::from("value"), Value::Map(fields)),
                ])
            })
            .collect()
    }

    fn replace_other(&mut self, key: &[u8], kind: &str) {
        if self.keys.get(key).is_some_and(|e| e.type_name() != kind) {
            self.keys.remove(key);
        }
    }

    /// A string key's value; None when missing or not a string.
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// assert_eq!(ks.get("nope"), None);
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        match self.keys.get(key.as_ref()) {
            Some(Entry::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The members of a set or the items of a list, in order (a hash's fields; empty
    /// for other keys).
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.sadd("s", "x");
    /// assert_eq!(ks.members("s"), vec![b"x".to_vec()]);
    /// ```
    pub fn members(&self, key: impl AsRef<[u8]>) -> Vec<Vec<u8>> {
        match self.keys.get(key.as_ref()) {
            Some(Entry::Set(s)) => s.clone(),
            Some(Entry::List(l)) => l.iter().cloned().collect(),
            Some(Entry::Hash(h)) => h.iter().map(|(f, _)| f.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `key` exists.
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// assert!(ks.set("k", "").contains("k"));
    /// ```
    pub fn contains(&self, key: impl AsRef<[u8]>) -> bool {
        self.keys.contains_key(key.as_ref())
    }

    /// The number of keys.
    ///
    /// ```
    /// assert_eq!(gears::testing::Keyspace::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    ///
    /// ```
    /// assert!(gears::testing::Keyspace::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The names of the keys matching a glob pattern, sorted.
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.set("a:1", "").set("b:1", "");
    /// assert_eq!(ks.keys_matching("a:*"), vec![b"a:1".to_vec()]);
    /// ```
    pub fn keys_matching(&self, pattern: impl AsRef<[u8]>) -> Vec<Vec<u8>> {
        self.keys
            .keys()
            .filter(|k| glob::matches(pattern.as_ref(), k))
            .cloned()
            .collect()
    }

    /// The key's type as TYPE names it (`none` when it is missing).
    ///
    /// ```
    /// let mut ks = gears::testing::Keyspace::new();
    /// assert_eq!(ks.sadd("s", "x").type_of("s"), "set");
    /// assert_eq!(ks.type_of("nope"), "none");
    /// ```
    pub fn type_of(&self, key: impl AsRef<[u8]>) -> &'static str {
        self.keys.get(key.as_ref()).map_or("none", Entry::type_name)
    }

    /// The KeysReader record of `key`, as the host reads it: `{key, value, type, event}`
    /// (value: a str or bin for a string, a map for a hash, an array for a list, nil for
    /// other types); None when the key does not exist.
    ///
    /// ```
    /// use gears::{KeyRecord, Value};
    /// let mut ks = gears::testing::Keyspace::new();
    /// ks.set("k", "v");
    /// let r: KeyRecord = gears::from_value(&ks.key_record("k", Some("set")).unwrap()).unwrap();
    /// assert_eq!((r.key.as_str(), r.kind.as_deref()), ("k", Some("string")));
    /// assert_eq!(r.value, Some(Value::from("v")));
    /// assert_eq!(r.event.as_deref(), Some("set"));
    /// ```
    pub fn key_record(&self, key: impl AsRef<[u8]>, event: Option<&str>) -> Option<Value> {
        let key = key.as_ref();
        let entry = self.keys.get(key)?;
        let value = match entry {
            Entry::Str(s) => bytes_value(s),
            Entry::Hash(h) => Value::Map(
                h.iter()
                    .map(|(f, v)| (bytes_value(f), bytes_value(v)))
                    .collect(),
            ),
            Entry::List(l) => Value::Array(l.iter().map(|v| bytes_value(v)).collect()),
            Entry::Set(_) | Entry::Stream(_) => Value::Nil,
        };
        Some(Value::Map(vec![
            (
                Value::from("key"),
                Value::from(String::from_utf8_lossy(key).into_owned()),
            ),
            (Value::from("value"), value),
            (Value::from("type"), Value::from(entry.type_name())),
            (Value::from("event"), event.map_or(Value::Nil, Value::from)),
        ]))
    }
}

fn field<'a>(h: &'a [(Bytes, Bytes)], f: &[u8]) -> Option<&'a [u8]> {
    h.iter()
        .find(|(k, _)| k.as_slice() == f)
        .map(|(_, v)| v.as_slice())
}

fn wrong_args(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// The id XADD gives a message: `*` (now in ms, or after the last id), `ms-*` or `ms-seq`
/// (which must be after the last id).
fn next_id(spec: &[u8], last: StreamId) -> Result<StreamId, Reply> {
    let invalid = || Reply::error("ERR Invalid stream ID specified as stream command argument");
    let after_last = |ms: u64| {
        if ms > last.0 {
            Ok((ms, 0))
        } else {
            last.1
                .checked_add(1)
                .map(|seq| (last.0, seq))
                .ok_or_else(invalid)
        }
    };
    let id = if spec == b"*" {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        after_last(now)?
    } else {
        let text = std::str::from_utf8(spec).map_err(|_| invalid())?;
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        let ms: u64 = ms.parse().map_err(|_| invalid())?;
        if seq == "*" {
            if ms < last.0 {
                return Err(too_small());
            }
            after_last(ms)?
        } else {
            (ms, seq.parse().map_err(|_| invalid())?)
        }
    };
    if id <= last {
        if id == (0, 0) {
            return Err(Reply::error(
                "ERR The ID specified in XADD must be greater than 0-0",
            ));
        }
        return Err(too_small());
    }
    Ok(id)
}

fn too_small() -> Reply {
    Reply::error("ERR The ID specified in XADD is equal or smaller than the target stream top item")
}
