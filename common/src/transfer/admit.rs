//! Which listed files are copied: each passes the filter, the destination's name rules, the
//! comparison with what the destination holds, and the deadline, in that order; every file
//! turned away is counted in the job's result.

use std::sync::Arc;

use super::decide::{decide, Decision};
use super::filter::Filter;
use super::held::Held;
use super::names::NameGuard;
use super::Deadline;
use crate::error::Error;
use crate::message::TransferOptions;
use crate::result::{FileError, JobResult};
use crate::storage::{Destination, ListItem, RemoteFile, SourceFile};

/// What becomes of one listed item.
pub(super) enum Admitted {
    Copy {
        file: SourceFile,
        remote: Option<RemoteFile>,
        decision: Decision,
    },
    /// Not started: the deadline is near. Another invocation takes it.
    HandBack(SourceFile),
    /// Skipped, excluded or failed, and counted as such.
    Counted,
}

pub(super) struct Admission<'a> {
    pub filter: &'a Filter,
    pub options: &'a TransferOptions,
    pub deadline: Option<Deadline>,
    pub dest: Arc<dyn Destination>,
    pub names: NameGuard,
    pub held: Held,
}

impl Admission<'_> {
    /// Decide for `item`; once files are being handed back (`handing_back`), every later one
    /// is too, so a part's files stay in listing order.
    pub async fn admit(
        &mut self,
        item: ListItem,
        handing_back: bool,
        result: &mut JobResult,
    ) -> Admitted {
        let file = match item {
            ListItem::File(f) if handing_back => return Admitted::HandBack(f),
            ListItem::File(f) if self.deadline.is_some_and(|d| d.is_near()) => {
                tracing::info!(path = %f.path, "deadline near: handing the remaining files back");
                return Admitted::HandBack(f);
            }
            ListItem::File(f) => f,
            ListItem::Symlink(path) => {
                tracing::info!(%path, "symbolic link not followed");
                result.files.symlinks_skipped += 1;
                return Admitted::Counted;
            }
            ListItem::Error(path, e) => {
                tracing::warn!(%path, code = e.code(), error = %e, "cannot list");
                return failed(result, path, &e);
            }
        };
        if !self.filter.matches(&file.path) {
            result.files.excluded += 1;
            return Admitted::Counted;
        }
        result.files.found += 1;
        if let Err(e) = self.names.admit(self.dest.as_ref(), &file.path) {
            tracing::warn!(path = %file.path, code = e.code(), error = %e, "cannot store this name");
            return failed(result, file.path, &e);
        }
        let remote = match self.held.lookup(&file.path).await {
            Ok(remote) => remote,
            Err(e) => return failed(result, file.path, &e),
        };
        let decision = decide(&file, remote.as_ref(), self.options);
        if decision == Decision::Skip {
            result.files.skipped += 1;
            result.bytes.skipped += file.size;
            return Admitted::Counted;
        }
        Admitted::Copy {
            file,
            remote,
            decision,
        }
    }

    /// Whether the destination's listing was read whole (see [`Held::finish`]).
    pub async fn finish(self) -> bool {
        self.held.finish().await
    }
}

fn failed(result: &mut JobResult, path: String, e: &Error) -> Admitted {
    result.files.failed += 1;
    result.errors.push(FileError::new(Some(path), e));
    Admitted::Counted
}
