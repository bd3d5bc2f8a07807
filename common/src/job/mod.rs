//! Jobs: turn a validated message into work and a result. Never panics and never returns an
//! error: whatever happens ends up in the [`JobResult`].

mod backup;
pub mod storages;
mod test_connection;

use std::sync::Arc;

use crate::config::Profiles;
use crate::message::JobMessage;
use crate::result::JobResult;
use crate::transfer::Progress;

pub async fn run(message: &JobMessage, profiles: &Profiles, progress: Arc<Progress>) -> JobResult {
    match message {
        JobMessage::Backup(job) => backup::run(job, profiles, progress).await,
        JobMessage::TestConnection(job) => test_connection::run(job, profiles).await,
    }
}

/// Parse, validate and run a message given as text (what every entry point receives).
pub async fn run_text(text: &str, profiles: &Profiles, progress: Arc<Progress>) -> JobResult {
    match JobMessage::parse(text) {
        Ok(message) => run(&message, profiles, progress).await,
        Err(e) => JobResult::job_failed("unknown", None, &e),
    }
}
