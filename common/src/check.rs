//! Test Connection's vocabulary, shared by every storage: the steps each side runs, cheapest
//! first, and the step that failed. Steps are an enum, so a failure always names a step the
//! report knows (a misspelt string once let a failure pass as success).

use serde::Serialize;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The storage profile resolves (options present and valid).
    Configuration,
    /// Reach the host or endpoint: DNS, TCP (and TLS).
    Connect,
    /// The SSH handshake: algorithms and host key.
    Handshake,
    /// Log in, or get a token / use a SAS.
    Authenticate,
    /// The container or share exists.
    Access,
    /// Listing is allowed (SFTP: the SFTP channel opens and the path lists).
    List,
    /// Writing is allowed (nothing is left visible).
    Write,
    /// A snapshot repository: the password opens it (or there is none yet to open).
    Repository,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Configuration => "configuration",
            Step::Connect => "connect",
            Step::Handshake => "handshake",
            Step::Authenticate => "authenticate",
            Step::Access => "access",
            Step::List => "list",
            Step::Write => "write",
            Step::Repository => "repository",
        }
    }
}

/// A source's steps: reach the host (DNS, TCP), the SSH handshake (algorithms, host key), log
/// in, and list the source path.
pub const SOURCE_STEPS: [Step; 4] = [
    Step::Connect,
    Step::Handshake,
    Step::Authenticate,
    Step::List,
];

/// An Azure destination's steps: reach the endpoint (DNS, TCP, TLS), authenticate (a token, an
/// unexpired SAS), the container or share exists, listing is allowed, writing is allowed.
pub const DESTINATION_STEPS: [Step; 5] = [
    Step::Connect,
    Step::Authenticate,
    Step::Access,
    Step::List,
    Step::Write,
];

/// An SFTP restore target's steps: as a source up to the SFTP channel, then write.
pub const SFTP_TARGET_STEPS: [Step; 5] = [
    Step::Connect,
    Step::Handshake,
    Step::Authenticate,
    Step::List,
    Step::Write,
];

/// The step that failed, and why.
#[derive(Debug)]
pub struct CheckFailure {
    pub step: Step,
    pub error: Error,
}

impl CheckFailure {
    /// For `map_err`: `.map_err(CheckFailure::at(Step::List))`.
    pub fn at(step: Step) -> impl FnOnce(Error) -> CheckFailure {
        move |error| CheckFailure { step, error }
    }
}
