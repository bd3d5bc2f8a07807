//! What the destination already holds, for the copy-or-skip decision, without holding either
//! side's listing whole: the source walk and the destination's listing come in the same path
//! order ([`crate::storage::walk`]), so each file is looked up by reading the destination's
//! listing forward, as in a merge.
//!
//! The merge never trusts the order blindly. A listed path out of order is kept aside and still
//! found; a path asked out of order (a source that lists in another order), or asked after the
//! listing failed, is asked of the destination by itself (`stat`). Memory holds one listed file
//! plus what came out of order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::storage::{Destination, HeldFile, Holdings, RemoteFile};

/// Where the destination's side of the decision comes from.
pub enum Existing {
    /// List it now, alongside the source (a whole tree is being copied).
    List,
    /// Decided already: what the destination held for each file being copied that it held
    /// (the planner's listing; a file not in it was not there).
    Listed(HashMap<String, RemoteFile>),
    /// Ask file by file (a part: its files are a slice of a big tree).
    PerFile,
}

/// The destination's listing, read forward as the source asks.
pub struct MergedListing {
    dest: Arc<dyn Destination>,
    /// `None` once it ended or failed.
    listing: Option<Holdings>,
    /// The next listed file, not yet passed.
    peeked: Option<HeldFile>,
    last_listed: Option<String>,
    last_asked: Option<String>,
    /// Listed out of path order: kept until asked for.
    stragglers: HashMap<String, RemoteFile>,
    /// The listing was read to its end without an error.
    complete: bool,
}

impl MergedListing {
    pub fn new(dest: Arc<dyn Destination>, listing: Holdings) -> Self {
        MergedListing {
            dest,
            listing: Some(listing),
            peeked: None,
            last_listed: None,
            last_asked: None,
            stragglers: HashMap::new(),
            complete: false,
        }
    }

    /// What the destination holds under `path` (`None`: nothing).
    pub async fn lookup(&mut self, path: &str) -> Result<Option<RemoteFile>> {
        if self.last_asked.as_deref().is_some_and(|last| path <= last) {
            // Out of order: the listing has moved past it.
            return match self.stragglers.remove(path) {
                Some(remote) => Ok(Some(remote)),
                None => self.dest.stat(path).await,
            };
        }
        self.last_asked = Some(path.to_string());
        while let Some(next) = self.peek().await {
            match next.path.as_str().cmp(path) {
                // Held, but not in the source (or filtered out): nothing to decide.
                std::cmp::Ordering::Less => self.peeked = None,
                std::cmp::Ordering::Equal => return Ok(self.peeked.take().map(|f| f.remote)),
                std::cmp::Ordering::Greater => break,
            }
        }
        if let Some(remote) = self.stragglers.remove(path) {
            return Ok(Some(remote));
        }
        if self.listing.is_none() && !self.complete {
            return self.dest.stat(path).await; // the listing failed: ask instead
        }
        Ok(None)
    }

    /// The next listed file in path order; `None` when the listing ended or failed.
    async fn peek(&mut self) -> Option<&HeldFile> {
        while self.peeked.is_none() {
            let listing = self.listing.as_mut()?;
            match listing.recv().await {
                None => {
                    self.listing = None;
                    self.complete = true;
                }
                Some(Err(e)) => {
                    tracing::warn!(code = e.code(), error = %e, "listing the destination failed: asking file by file");
                    self.listing = None;
                }
                Some(Ok(file)) => {
                    if self.last_listed.as_ref().is_some_and(|l| &file.path <= l) {
                        self.stragglers.insert(file.path, file.remote);
                        continue;
                    }
                    self.last_listed = Some(file.path.clone());
                    self.peeked = Some(file);
                }
            }
        }
        self.peeked.as_ref()
    }

    /// Read the rest of the listing, so that its walk met every dead temporary; whether it was
    /// read whole.
    pub async fn finish(mut self) -> bool {
        while self.peek().await.is_some() {
            self.peeked = None;
        }
        self.complete
    }
}

/// [`Existing`] made ready to answer.
pub(super) enum Held {
    Merged(Box<MergedListing>),
    Listed(HashMap<String, RemoteFile>),
    PerFile(Arc<dyn Destination>),
}

impl Held {
    pub(super) async fn new(existing: Existing, dest: &Arc<dyn Destination>) -> Result<Self> {
        Ok(match existing {
            Existing::List => {
                let listing = dest.list().await?;
                Held::Merged(Box::new(MergedListing::new(dest.clone(), listing)))
            }
            Existing::Listed(listed) => Held::Listed(listed),
            Existing::PerFile => Held::PerFile(dest.clone()),
        })
    }

    pub(super) async fn lookup(&mut self, path: &str) -> Result<Option<RemoteFile>> {
        match self {
            Held::Merged(merged) => merged.lookup(path).await,
            Held::Listed(listed) => Ok(listed.remove(path)),
            Held::PerFile(dest) => dest.stat(path).await,
        }
    }

    /// Whether a listing was read whole (here or by the planner), so that the temporaries it
    /// found dead can be removed.
    pub(super) async fn finish(self) -> bool {
        match self {
            Held::Merged(merged) => merged.finish().await,
            Held::Listed(_) => true,
            Held::PerFile(_) => false,
        }
    }
}
