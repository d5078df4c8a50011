//! What the rest of the module asks of the Python host, in a build without it (no `python`
//! feature): there are no sessions. Paths that would run Python are cfg'd at their sites.

pub mod session {
    use std::sync::Arc;

    use crate::engine::execution::RunAs;

    /// No session exists without the Python host.
    pub fn exists(_id: &str) -> bool {
        false
    }

    /// (description, source text, whom it acts for) of a live session: none here.
    pub fn source(_id: &str) -> Option<(Option<String>, Arc<str>, RunAs)> {
        None
    }
}
