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
//! A test loads a [`Keyspace`] (an in-memory fake of the commands guests use), runs the
//! guest's job or registration with [`run_job`] / [`run_registration`] (the same
//! runtime code that runs inside Redis, and the module's own steps as one shard runs
//! them), and looks at the results, the errors, the keyspace and the logs:
//!
//! ```
//! use gears::testing::{self, with_host, TestHost};
//! use gears::{execute_as, GearsBuilder, Guest, Run, Value};
//!
//! // recipe 2: count movies by genre
//! fn describe(g: &mut Guest) {
//!     g.job("count", GearsBuilder::new("KeysOnlyReader")
//!         .map(|key: String| execute_as::<Option<String>>(["hget", key.as_str(), "genres"]))
//!         .filter(|g: Option<String>| Ok(g.is_some()))
//!         .flatmap(|g: Option<String>| {
//!             Ok(g.unwrap_or_default().split(',').map(String::from).collect::<Vec<_>>())
//!         })
//!         .countby_record()
//!         .run(Run::new().pattern("movie:*")));
//! }
//!
//! let host = TestHost::new();
//! host.keyspace()
//!     .hset("movie:1", "genres", "Drama,Comedy")
//!     .hset("movie:2", "genres", "Drama");
//! let keys = vec![Value::from("movie:1"), Value::from("movie:2"), Value::from("movie:3")];
//! let (results, errors) = with_host(&host, || testing::run_job(describe, "count", keys, &[]))
//!     .expect("the job runs");
//! let kv = |k: &str, n: i64| Value::Map(vec![
//!     (Value::from("key"), Value::from(k)),
//!     (Value::from("value"), Value::from(n)),
//! ]);
//! assert_eq!(results, vec![kv("Drama", 2), kv("Comedy", 1)]);
//! assert!(errors.is_empty());
//!
//! // the same records, read from the keyspace as the KeysOnlyReader would
//! let (again, _) = with_host(&host, || testing::run_job_over_keyspace(describe, "count", &[]))
//!     .expect("the job runs");
//! assert_eq!(again, results);
//!
//! // outside a host, execute() is an error, not an abort
//! let e = gears::execute(["get", "k"]).unwrap_err();
//! assert!(e.to_string().contains("outside a host"));
//! ```
//!
//! ## How close to the module
//!
//! A run is what one shard of the module does with one batch: the plan's steps are
//! expanded as the module expands them (groupby is repartition + localgroupby,
//! aggregate is aggregate_local, collect, aggregate_local...), consecutive guest steps
//! fuse into one run of the guest's runtime (countby's and count's local half
//! inside it), cut where records would move between shards; collect and repartition
//! change nothing on one shard. count, countby, distinct, avg, sort and limit are the
//! module's, with its rules (`1`, `1.0` and `true` are one countby key, sort puts
//! numbers before strings). What the guest outputs is decoded as the host decodes it
//! (integers beyond i64 become floats) before the next step sees it.
//!
//! Differences: all records go in one batch (the module reads in batches: a step's
//! side effects may interleave differently with a later run's); a panic in a step
//! panics the test (the module fails the execution); nothing expires; the keyspace
//! lists keys sorted (Redis in hash order).
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
mod native;
mod plan;
mod reply;
mod run;

pub use host::{HostGuard, TestHost, HASHTAG, SHARD_ID};
pub use keyspace::Keyspace;
pub use plan::{Description, PlanInfo, StepInfo};
pub use reply::Reply;
pub use run::{describe, run_job, run_job_over_keyspace, run_registration, Outcome, Which};

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

#[cfg(test)]
mod tests;
