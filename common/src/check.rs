//! Test Connection's vocabulary, shared by sources and destinations: the steps each side runs,
//! cheapest first, and the step that failed.

use crate::error::Error;

/// A source's steps: reach the host (DNS, TCP), the SSH handshake (algorithms, host key), log
/// in, and list the source path.
pub const SOURCE_STEPS: [&str; 4] = ["connect", "handshake", "authenticate", "list"];

/// A destination's steps: reach the endpoint (DNS, TCP, TLS), authenticate (a token, an unexpired
/// SAS), the container or share exists, listing is allowed, writing is allowed.
pub const DESTINATION_STEPS: [&str; 5] = ["connect", "authenticate", "access", "list", "write"];

/// The step that failed, and why.
#[derive(Debug)]
pub struct CheckFailure {
    pub step: &'static str,
    pub error: Error,
}

impl CheckFailure {
    /// For `map_err`: `.map_err(CheckFailure::at("list"))`.
    pub fn at(step: &'static str) -> impl FnOnce(Error) -> CheckFailure {
        move |error| CheckFailure { step, error }
    }
}
