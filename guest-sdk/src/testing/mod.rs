//! # Testing guests without Redis
//!
//! On a native target (`cargo test`), the host calls of the SDK ([`execute`],
//! [`execute_as`], [`log`], [`config_get`], [`shard_id`], [`hashtag`], [`atomic`],
//! [`call_next`], [`override_reply`]...) go to a [`TestHost`] installed on the current
//! thread, never to the WebAssembly imports (which would abort the test binary). With
//! no host installed, a call that returns a `Result` is an error saying it ran outside
//! a host, `log` writes to stderr, `config_get` is None and `shard_id` / `hashtag`
//! answer [`SHARD_ID`] / [`HASHTAG`]. This module is not compiled for wasm32: a guest
//! built for Redis is unchanged.
//!
//! ```
//! use gears::testing::{with_host, TestHost};
//!
//! let host = TestHost::new();
//! host.keyspace().hset("movie:1", "genres", "Drama,Comedy");
//! let genres = with_host(&host, || {
//!     gears::execute_as::<Option<String>>(["hget", "movie:1", "genres"])
//! });
//! assert_eq!(genres.unwrap().as_deref(), Some("Drama,Comedy"));
//!
//! // outside a host, execute() is an error, not an abort
//! let e = gears::execute(["get", "k"]).unwrap_err();
//! assert!(e.to_string().contains("outside a host"));
//! ```
//!
//! [`execute`]: crate::execute
//! [`execute_as`]: crate::execute_as
//! [`log`]: crate::log
//! [`config_get`]: crate::config_get
//! [`shard_id`]: crate::shard_id
//! [`hashtag`]: crate::hashtag
//! [`atomic`]: crate::atomic
//! [`call_next`]: crate::call_next
//! [`override_reply`]: crate::override_reply

pub(crate) mod backend;
mod glob;
mod host;
mod keyspace;
mod reply;

pub use host::{HostGuard, TestHost, HASHTAG, SHARD_ID};
pub use keyspace::Keyspace;
pub use reply::Reply;

/// Runs `f` with `host` installed on the current thread: the host calls `f` makes (and
/// the guest code it runs) go to `host`. The host installed before, if any, comes back
/// afterwards, even when `f` panics.
///
/// ```
/// use gears::testing::{with_host, TestHost};
///
/// let host = TestHost::new();
/// let n = with_host(&host, || gears::execute_as::<i64>(["incr", "visits"])).unwrap();
/// assert_eq!(n, 1);
/// assert_eq!(host.keyspace().get("visits"), Some(&b"1"[..]));
/// ```
pub fn with_host<T>(host: &TestHost, f: impl FnOnce() -> T) -> T {
    let _guard = host.install();
    f()
}
