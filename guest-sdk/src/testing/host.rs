//! The test host: what `execute`, `log`, `config_get`... reach on a native target, once
//! a test installs one on its thread.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

use rmpv::Value;

use super::keyspace::Keyspace;
use super::reply::Reply;
use crate::Level;

type Handler = dyn Fn(&[Vec<u8>]) -> Option<Reply>;

#[derive(Default)]
struct State {
    keyspace: RefCell<Keyspace>,
    handlers: RefCell<Vec<Rc<Handler>>>,
    config: RefCell<HashMap<String, String>>,
    shard_id: RefCell<Option<String>>,
    hashtag: RefCell<Option<String>>,
    hook: RefCell<Option<Vec<u8>>>,
    logs: RefCell<Vec<(Level, String)>>,
    commands: RefCell<Vec<Vec<Vec<u8>>>>,
    overrides: RefCell<Vec<Value>>,
    atomic_depth: Cell<u32>,
    describing: Cell<bool>,
}

/// The shard id a [`TestHost`] answers unless told another.
pub const SHARD_ID: &str = "0000000000000000000000000000000000000001";
/// The hashtag a [`TestHost`] answers unless told another (its slot is 0).
pub const HASHTAG: &str = "06S";

/// A fake of the module for a guest's native tests: a [`Keyspace`] the guest's
/// `execute` calls run against, handlers that answer commands first, settings for
/// `config_get`, a shard id and hashtag, and a record of what the guest logged, ran
/// and replied with `override_reply`.
///
/// A `TestHost` is a handle: clones share the same state, so a test can keep one and
/// look at the keyspace after the guest ran. Install it on the current thread with
/// [`with_host`](super::with_host) or [`install`](Self::install).
///
/// ```
/// use gears::testing::{with_host, Reply, TestHost};
///
/// let host = TestHost::new();
/// host.keyspace().set("k", "v");
/// host.on_command(|args| (args[0] == b"time").then(|| Reply::Int(42)));
/// host.set_config("myapp.limit", "10");
/// with_host(&host, || {
///     assert_eq!(gears::execute(["get", "k"]).unwrap(), gears::Value::from("v"));
///     assert_eq!(gears::execute(["time"]).unwrap(), gears::Value::from(42));
///     assert_eq!(gears::config_get("myapp.limit").as_deref(), Some("10"));
///     gears::log("hello");
/// });
/// assert_eq!(host.log_messages(), ["hello"]);
/// assert_eq!(host.commands().len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct TestHost {
    state: Rc<State>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("keys", &self.state.keyspace.try_borrow().map(|k| k.len()))
            .field("logs", &self.state.logs.borrow().len())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TestHost>> = const { RefCell::new(None) };
}

/// Keeps a [`TestHost`] installed on its thread until dropped; the host installed
/// before comes back then (guards nest).
#[must_use = "the host is uninstalled when the guard is dropped"]
#[derive(Debug)]
pub struct HostGuard {
    previous: Option<TestHost>,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The host installed on this thread, if any.
pub(crate) fn current() -> Option<TestHost> {
    CURRENT.with(|c| c.borrow().clone())
}

impl TestHost {
    /// A host with an empty keyspace, no handler, no setting.
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// assert!(host.keyspace().is_empty());
    /// ```
    pub fn new() -> TestHost {
        TestHost::default()
    }

    /// Installs the host on the current thread until the guard is dropped.
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// {
    ///     let _guard = host.install();
    ///     gears::execute(["set", "k", "v"]).unwrap();
    /// }
    /// assert!(gears::execute(["get", "k"]).is_err()); // no host any more
    /// assert_eq!(host.keyspace().get("k"), Some(&b"v"[..]));
    /// ```
    pub fn install(&self) -> HostGuard {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        HostGuard { previous }
    }

    /// The keyspace, to load before a run or look at after it. Do not hold it across
    /// guest code: the guest's commands would find it borrowed (they fail with an
    /// error saying so).
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// host.keyspace().hset("movie:1", "genres", "Drama");
    /// assert_eq!(host.keyspace().type_of("movie:1"), "hash");
    /// ```
    pub fn keyspace(&self) -> RefMut<'_, Keyspace> {
        self.state.keyspace.borrow_mut()
    }

    /// Runs a command against the keyspace (not through the handlers, not recorded in
    /// [`commands`](Self::commands)) and returns its reply as `execute` would.
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// host.command(["hset", "movie:1", "genres", "a,b"]).unwrap();
    /// assert!(host.command(["get", "movie:1"]).unwrap_err().to_string().starts_with("WRONGTYPE"));
    /// ```
    pub fn command<I, A>(&self, args: I) -> crate::Result<Value>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        match self.keyspace().command(args) {
            Reply::Error(e) => Err(crate::Error::msg(e)),
            reply => Ok(reply.to_value()),
        }
    }

    /// Adds a handler that sees every command the guest runs before the keyspace does:
    /// `Some(reply)` answers it, `None` passes it on (to the next handler, then the
    /// keyspace). Handlers run in the order they were added. Use it to fake commands
    /// the keyspace lacks, or to make one fail.
    ///
    /// ```
    /// use gears::testing::{with_host, Reply, TestHost};
    /// let host = TestHost::new();
    /// host.on_command(|args| {
    ///     (args[0].eq_ignore_ascii_case(b"hget")).then(|| Reply::error("ERR boom"))
    /// });
    /// with_host(&host, || {
    ///     assert_eq!(gears::execute(["hget", "h", "f"]).unwrap_err().to_string(), "ERR boom");
    /// });
    /// ```
    pub fn on_command(&self, f: impl Fn(&[Vec<u8>]) -> Option<Reply> + 'static) -> &Self {
        self.state.handlers.borrow_mut().push(Rc::new(f));
        self
    }

    /// A setting `config_get(name)` returns.
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// host.set_config("MaxExecutions", "1000");
    /// ```
    pub fn set_config(&self, name: impl Into<String>, value: impl Into<String>) -> &Self {
        self.state
            .config
            .borrow_mut()
            .insert(name.into(), value.into());
        self
    }

    /// The id `shard_id()` returns (default [`SHARD_ID`]).
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// host.set_shard_id("ab".repeat(20));
    /// ```
    pub fn set_shard_id(&self, id: impl Into<String>) -> &Self {
        *self.state.shard_id.borrow_mut() = Some(id.into());
        self
    }

    /// The tag `hashtag()` returns (default [`HASHTAG`]).
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// host.set_hashtag("tag1");
    /// ```
    pub fn set_hashtag(&self, tag: impl Into<String>) -> &Self {
        *self.state.hashtag.borrow_mut() = Some(tag.into());
        self
    }

    /// Makes the guest's code run as a CommandReader hook of `command`: `call_next(args)`
    /// then runs `command args...` (through the handlers and the keyspace). Without it,
    /// `call_next` is an error.
    ///
    /// ```
    /// use gears::testing::{with_host, TestHost};
    /// let host = TestHost::new();
    /// host.hook("hset");
    /// with_host(&host, || gears::call_next(["h", "f", "v"])).unwrap();
    /// assert_eq!(host.keyspace().type_of("h"), "hash");
    /// ```
    pub fn hook(&self, command: impl AsRef<[u8]>) -> &Self {
        *self.state.hook.borrow_mut() = Some(command.as_ref().to_vec());
        self
    }

    /// The lines the guest logged (`log`, `log_at`, `try_log`), with their levels.
    ///
    /// ```
    /// use gears::{testing::{with_host, TestHost}, Level};
    /// let host = TestHost::new();
    /// with_host(&host, || gears::log_at(Level::Warning, "careful"));
    /// assert_eq!(host.logs(), [(Level::Warning, "careful".to_string())]);
    /// ```
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.logs.borrow().clone()
    }

    /// The messages of [`logs`](Self::logs), without their levels.
    ///
    /// ```
    /// let host = gears::testing::TestHost::new();
    /// assert!(host.log_messages().is_empty());
    /// ```
    pub fn log_messages(&self) -> Vec<String> {
        self.state
            .logs
            .borrow()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The commands the guest ran (`execute`, `execute_as`, `call_next` with the hooked
    /// command first), in order.
    ///
    /// ```
    /// use gears::testing::{with_host, TestHost};
    /// let host = TestHost::new();
    /// with_host(&host, || gears::execute(["incr", "n"])).unwrap();
    /// assert_eq!(host.commands(), [vec![b"incr".to_vec(), b"n".to_vec()]]);
    /// ```
    pub fn commands(&self) -> Vec<Vec<Vec<u8>>> {
        self.state.commands.borrow().clone()
    }

    /// The replies the guest gave with `override_reply`, in order.
    ///
    /// ```
    /// use gears::testing::{with_host, TestHost};
    /// let host = TestHost::new();
    /// with_host(&host, || gears::override_reply("+OK")).unwrap();
    /// assert_eq!(host.overridden_replies(), [gears::Value::from("+OK")]);
    /// ```
    pub fn overridden_replies(&self) -> Vec<Value> {
        self.state.overrides.borrow().clone()
    }

    /// How deep in `atomic` blocks the guest is now (0 outside them).
    ///
    /// ```
    /// use gears::testing::{with_host, TestHost};
    /// let host = TestHost::new();
    /// let depth = with_host(&host, || gears::atomic(|| Ok(host.atomic_depth())));
    /// assert_eq!((depth.unwrap(), host.atomic_depth()), (1, 0));
    /// ```
    pub fn atomic_depth(&self) -> u32 {
        self.state.atomic_depth.get()
    }

    // -- what the backend asks --

    /// Runs a command from the guest: handlers first, then the keyspace.
    pub(crate) fn run(&self, what: &str, args: Vec<Vec<u8>>) -> Result<Reply, String> {
        if self.state.describing.get() {
            return Err(format!(
                "{what}() is not available while the guest is described"
            ));
        }
        if args.is_empty() {
            return Err(format!("{what}() needs a command name"));
        }
        // Cloned out, so a handler may run commands itself.
        let handlers: Vec<Rc<Handler>> = self.state.handlers.borrow().clone();
        self.state.commands.borrow_mut().push(args.clone());
        if let Some(reply) = handlers.iter().find_map(|h| h(&args)) {
            return Ok(reply);
        }
        let mut ks = self.state.keyspace.try_borrow_mut().map_err(|_| {
            format!("{what}(): the test holds TestHost::keyspace() borrowed while the guest runs")
        })?;
        Ok(ks.run(&args))
    }

    pub(crate) fn hooked(&self) -> Option<Vec<u8>> {
        self.state.hook.borrow().clone()
    }

    pub(crate) fn logged(&self, level: Level, message: &str) {
        self.state
            .logs
            .borrow_mut()
            .push((level, message.to_string()));
    }

    pub(crate) fn config(&self, name: &str) -> Option<String> {
        self.state.config.borrow().get(name).cloned()
    }

    pub(crate) fn shard(&self) -> String {
        let id = self.state.shard_id.borrow().clone();
        id.unwrap_or_else(|| SHARD_ID.into())
    }

    pub(crate) fn tag(&self) -> String {
        let tag = self.state.hashtag.borrow().clone();
        tag.unwrap_or_else(|| HASHTAG.into())
    }

    pub(crate) fn atomic(&self, enter: bool) {
        let d = self.state.atomic_depth.get();
        let d = if enter {
            d.saturating_add(1)
        } else {
            d.saturating_sub(1)
        };
        self.state.atomic_depth.set(d);
    }

    pub(crate) fn overridden(&self, reply: Value) {
        self.state.overrides.borrow_mut().push(reply);
    }

    /// While the guest is described, commands fail as on the real host.
    pub(crate) fn describing(&self, on: bool) {
        self.state.describing.set(on);
    }
}
