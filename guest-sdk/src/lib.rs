//! # gears: write RedisGears pipelines in Rust, run them as WebAssembly
//!
//! A guest is a Rust `cdylib` built for `wasm32-wasip2`: a component that exports the
//! `plans` interface of `wit/gears.wit` (contract version [`CONTRACT_VERSION`]). The
//! module uploads it with `RG.WASMUPLOAD name [REPLACE]`, asks it once for its jobs and
//! registrations, and runs them like Python's GearsBuilder plans:
//!
//! ```no_run
//! use gears::{execute, execute_as, GearsBuilder, Guest, KeyRecord, Mode, Register, Run};
//!
//! fn describe(g: &mut Guest) {
//!     // RG.WASMRUN <guest> count movie:*  -> one {key: genre, value: n} per genre
//!     g.job("count", GearsBuilder::new("KeysOnlyReader")
//!         .map(|key: String| execute_as::<Option<String>>(["hget", key.as_str(), "genres"]))
//!         .filter(|g: Option<String>| Ok(g.is_some()))
//!         .flatmap(|g: Option<String>| {
//!             Ok(g.unwrap_or_default().split(',').map(String::from).collect::<Vec<_>>())
//!         })
//!         .countby_record()
//!         .run(Run::new().pattern("movie:*")));
//!     // every written key goes into the set all_keys
//!     g.registration(GearsBuilder::new("KeysReader")
//!         .filter(|r: KeyRecord| Ok(r.key != "all_keys"))
//!         .foreach(|r: KeyRecord| { execute(["sadd", "all_keys", r.key.as_str()])?; Ok(()) })
//!         .register(Register::new().mode(Mode::Async)));
//! }
//!
//! gears::guest!(describe);
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`).
//!
//! ## Records
//!
//! Records cross the boundary as MessagePack (`wit/ENCODING.md`); a step function's
//! argument is decoded from the record with serde into whatever type it names, and its
//! result encoded back: [`Value`] takes a record as is, `String` a key name,
//! [`KeyRecord`], [`StreamRecord`], [`TimeRecord`], [`GroupResult`] the readers' and
//! groupby's shapes, or any `#[derive(Deserialize)]` struct (maps fill structs by field
//! name; structs are written as maps). A record that does not decode into the argument
//! type is dropped with an error, like any error of the function.
//!
//! A step that reads only a field or two of its record can take a [`View`] instead
//! (`map_view`, `filter_view`, `foreach_view`): the record is read where it lies, in the
//! buffer the host sent the batch in, and nothing is decoded or copied but what the step
//! reads; [`View::decode`] gives the typed record on demand.
//!
//! ```
//! use gears::{execute, GearsBuilder, View};
//! // recipe 1 reading only each record's key
//! let key = |r: &View<'_>| r.get("key").and_then(|k| k.as_str()).map(String::from);
//! let b = GearsBuilder::new("KeysReader")
//!     .filter_view(move |r: View<'_>| Ok(key(&r).as_deref() != Some("all_keys")))
//!     .foreach_view(|r: View<'_>| {
//!         let key = r.get("key").and_then(|k| k.as_str()).unwrap_or_default();
//!         execute(["sadd", "all_keys", key])?;
//!         Ok(())
//!     });
//! ```
//!
//! ## Semantics
//!
//! Steps behave as in Python (RedisGears 1.2's GearsBuilder): each record travels depth-first through
//! consecutive steps; an `Err` from a step function drops only that record and adds its
//! text to the execution's errors; `accumulate` starts at `None`; `aggregate` and
//! `aggregateby` start every group from a copy of `zero`; group keys are compared by
//! their MessagePack encoding (so `1` and `1.0` are different keys); groupby-style
//! results are `{key, value}` maps. A panic aborts the guest instance: the host fails
//! the execution.
//!
//! ## Testing
//!
//! Under `cargo test` (any target but wasm32) host calls go to a fake of the module
//! instead of the WebAssembly imports: [`testing`] has an in-memory keyspace, a test host
//! that records logs and commands, and runners that take a guest's describe function and
//! run its jobs and registrations as one shard of the module would.
//!
//! The describe function must build the same plans every time it is called (the host
//! may call it in every fresh instance, and callbacks are numbered in the order they
//! are added).

#![warn(missing_docs)]
// No hand-written unsafe code: only the wit-bindgen bindings (rt.rs) have some, allowed
// there. Should some be added, it must say why it is sound like the module's does.
#![deny(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn
)]

extern crate self as gears;

mod builder;
mod callbacks;
mod error;
mod fused;
mod host;
mod records;
mod shortcut;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod unpack;
mod value;
mod view;

/// The runtime behind [`guest!`]; public only for the macro's expansion.
#[doc(hidden)]
#[path = "rt.rs"]
pub mod __rt;

pub use builder::{GearsBuilder, Guest, Mode, Plan, Register, Run, READERS};
pub use error::{Error, Result};
pub use host::{
    atomic, call_next, config_get, execute, execute_as, hashtag, log, log_at, override_reply,
    shard_id, try_log, Level,
};
pub use records::{GroupResult, KeyRecord, StreamRecord, TimeRecord};
pub use value::{from_value, to_value};
pub use view::View;

/// A dynamic record: rmpv's MessagePack value (nil, bool, integer, float, str, bin,
/// array, map, ext). Step functions that take or return `Value` see records exactly as
/// the host sends them.
///
/// ```
/// use gears::Value;
/// let v = Value::Map(vec![(Value::from("key"), Value::from("k1"))]);
/// assert_eq!(v["key"].as_str(), Some("k1"));
/// ```
pub use rmpv::Value;

/// The version of the host/guest contract this SDK speaks: the version of the WIT
/// package `redisgears:guest` and of the exported `redisgears:guest/plans@1.3.0`.
/// 1.1 added [`try_log`]; 1.2 the combiner steps a host may append to a fused run (the
/// local half of countby and count, run inside the guest); 1.3 the host's `call`, which
/// [`execute`] and [`execute_as`] use: a command's arguments in one buffer, its nil,
/// integer and string replies without MessagePack. A guest that calls `execute()` needs
/// a host of 1.3 or later; older hosts refuse to instantiate it.
///
/// ```
/// assert_eq!(gears::CONTRACT_VERSION, "1.3.0");
/// ```
pub const CONTRACT_VERSION: &str = "1.3.0";

/// Exports a guest: `gears::guest!(describe)` where `describe` is a
/// `fn(&mut Guest)` that adds the guest's jobs and registrations. Use it once, in the
/// guest's `cdylib` crate.
///
/// ```no_run
/// use gears::{GearsBuilder, Guest, Run};
///
/// fn describe(g: &mut Guest) {
///     g.job("shards", GearsBuilder::new("ShardsIDReader").run(Run::new()));
/// }
/// gears::guest!(describe);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! guest {
    ($describe:expr) => {
        /// The guest's describe function, for `gears::testing` on a native target (where
        /// the component's exports do not exist, so nothing else uses it).
        #[doc(hidden)]
        #[cfg(not(target_arch = "wasm32"))]
        pub fn __gears_describe(g: &mut $crate::Guest) {
            let describe: $crate::__rt::DescribeFn = $describe;
            describe(g)
        }

        const _: () = {
            struct GearsGuestExports;

            const DESCRIBE: $crate::__rt::DescribeFn = $describe;

            impl $crate::__rt::PlansGuest for GearsGuestExports {
                fn describe(
                ) -> ::core::result::Result<$crate::__rt::Description, ::std::string::String>
                {
                    $crate::__rt::describe(DESCRIBE)
                }
                fn open_run(
                    steps: ::std::vec::Vec<$crate::__rt::FusedStep>,
                ) -> ::core::result::Result<u32, ::std::string::String> {
                    $crate::__rt::open_run(DESCRIBE, steps)
                }
                fn push(
                    run: u32,
                    records: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<$crate::__rt::BatchOut, ::std::string::String> {
                    $crate::__rt::push(run, records)
                }
                fn finish(
                    run: u32,
                ) -> ::core::result::Result<$crate::__rt::BatchOut, ::std::string::String> {
                    $crate::__rt::finish(run)
                }
                fn close(handle: u32) {
                    $crate::__rt::close(handle)
                }
                fn open_generator(
                    callback: u32,
                    args: ::std::vec::Vec<::std::string::String>,
                ) -> ::core::result::Result<u32, ::std::string::String> {
                    $crate::__rt::open_generator(DESCRIBE, callback, args)
                }
                fn next_records(
                    generator: u32,
                    n: u32,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    $crate::__rt::next_records(generator, n)
                }
            }

            // The component's exports exist only in a component: a native build (`cargo
            // test` of the guest crate, with gears::testing) links without them.
            #[cfg(target_arch = "wasm32")]
    $crate::__rt::bindings::export!(GearsGuestExports with_types_in $crate::__rt::bindings);
        };
    };
}

#[cfg(test)]
mod tests;
