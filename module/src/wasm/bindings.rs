//! Host bindings of the guest contract, generated from the single WIT source in
//! guest-sdk/wit (the SDK generates the guest side from the same file).

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit",
    world: "guest",
    // log() has no error to answer with: a level it does not know fails the call.
    imports: { "redisgears:guest/host.log": trappable },
});

pub use exports::redisgears::guest::plans;
pub use redisgears::guest::types;

/// The major.minor.patch of the contract this host speaks (the WIT package version).
pub const CONTRACT_VERSION: &str = "1.3.0";
/// The first version of this major: guests built for it or later run here.
pub const OLDEST_CONTRACT: &str = "1.0.0";
/// The interface every guest exports, without its version.
pub const PLANS_INTERFACE: &str = "redisgears:guest/plans";
