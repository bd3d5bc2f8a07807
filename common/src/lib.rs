//! The backup worker's library: everything but the platform entry points.
//!
//! Data flow: a [`message::JobMessage`] names storages → [`config::Profiles`] resolves them →
//! [`job`] builds a [`storage::Source`] and a [`storage::Destination`] → [`transfer`] moves chunks
//! between them inside one memory budget → a [`result::JobResult`] says what happened.

pub mod check;
pub mod config;
pub mod error;
pub mod job;
pub mod message;
pub mod plan;
pub mod result;
pub mod snapshot;
pub mod storage;
pub mod transfer;

pub use error::{Error, Result};
