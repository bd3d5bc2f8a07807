//! The one order every listing keeps: **byte order of the whole relative path** (what `str`'s
//! `Ord` is). Both sides of a copy list in it, so the engine can walk them side by side (a merge)
//! instead of holding either whole in memory.
//!
//! A flat store (Blob) lists in it already. A hierarchical one (SFTP, Azure Files) gets it by
//! walking depth first with each directory's entries sorted as if a folder's name ended in `/`:
//! `a-b` < `a.txt` < `a/x` < `a0`, exactly as the full paths compare. Memory holds the sorted
//! entries of the folders on the way down, never the tree.
//!
//! [`walk_ahead`] runs such a walk with the next folders it will enter already being read, so a
//! far-away server costs a round trip per few folders instead of one per folder (memory: the
//! entries of up to [`FOLDERS_AHEAD`] more folders).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::read::joined;

/// One entry of a listed directory: a folder to walk into, or an item to yield.
pub enum Entry<T> {
    Dir(String),
    Item(String, T),
}

impl<T> Entry<T> {
    fn name(&self) -> (&str, bool) {
        match self {
            Entry::Dir(name) => (name, true),
            Entry::Item(name, _) => (name, false),
        }
    }
}

/// Compare two names of one directory as their full paths would compare.
fn walk_order(a: (&str, bool), b: (&str, bool)) -> Ordering {
    fn key((name, dir): (&str, bool)) -> impl Iterator<Item = u8> + '_ {
        name.bytes().chain(dir.then_some(b'/'))
    }
    key(a).cmp(key(b))
}

/// The relative path of `name` inside the relative folder `dir` (`""`: the root).
pub fn child(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// What to do next in a sorted walk.
pub enum Next<T> {
    /// Read this folder (path relative to the walk's root) and give its entries to
    /// [`SortedWalk::enter`].
    Read(String),
    /// The next item, in path order.
    Item(T),
}

enum Pending<T> {
    Dir(String),
    Item(T),
}

/// A depth-first walk in path order. The caller reads directories (however its storage does)
/// and feeds them in; the walk says what comes next.
pub struct SortedWalk<T> {
    /// Reversed: the next thing to do is on top.
    stack: Vec<Pending<T>>,
    /// The folders in `stack`, in the same order: the next one to read is on top.
    folders: Vec<String>,
}

impl<T> Default for SortedWalk<T> {
    fn default() -> Self {
        SortedWalk {
            stack: Vec::new(),
            folders: Vec::new(),
        }
    }
}

impl<T> SortedWalk<T> {
    /// The entries of folder `dir` (`""`: the root) were read: they come next, in order.
    pub fn enter(&mut self, dir: &str, mut entries: Vec<Entry<T>>) {
        entries.sort_by(|a, b| walk_order(a.name(), b.name()));
        for entry in entries.into_iter().rev() {
            self.stack.push(match entry {
                Entry::Dir(name) => {
                    let path = child(dir, &name);
                    self.folders.push(path.clone());
                    Pending::Dir(path)
                }
                Entry::Item(_, item) => Pending::Item(item),
            });
        }
    }

    /// The folders the walk will read next, nearest first.
    pub fn upcoming_folders(&self) -> impl Iterator<Item = &str> {
        self.folders.iter().rev().map(String::as_str)
    }
}

impl<T> Iterator for SortedWalk<T> {
    type Item = Next<T>;

    fn next(&mut self) -> Option<Next<T>> {
        Some(match self.stack.pop()? {
            Pending::Dir(path) => {
                self.folders.pop();
                Next::Read(path)
            }
            Pending::Item(item) => Next::Item(item),
        })
    }
}

/// A folder being read by a [`walk_ahead`]: its entries, or why not.
type FolderRead<T, E> = JoinHandle<Result<Vec<Entry<T>>, E>>;

/// Folder reads a [`walk_ahead`] keeps in flight (rclone lists with 8 checkers too).
pub const FOLDERS_AHEAD: usize = 8;

/// Walk in path order from the root's `first` entries, sending each item to `tx`, reading each
/// folder (its path relative to the root) with `read`; a folder that cannot be read is sent as
/// `failed(path, error)` and the walk goes on. Up to [`FOLDERS_AHEAD`] of the folders it will
/// enter next are read at once, each result held until the walk gets there. Ends when the walk
/// does or `tx`'s receiver is gone.
pub async fn walk_ahead<T, E, R, F>(
    first: Vec<Entry<T>>,
    read: R,
    failed: impl Fn(String, E) -> T,
    tx: mpsc::Sender<T>,
) where
    T: Send + 'static,
    E: Send + 'static,
    R: Fn(String) -> F,
    F: Future<Output = Result<Vec<Entry<T>>, E>> + Send + 'static,
{
    let mut walk = SortedWalk::default();
    walk.enter("", first);
    let mut reading: HashMap<String, FolderRead<T, E>> = HashMap::new();
    loop {
        let wanted: Vec<String> = walk
            .upcoming_folders()
            .take(FOLDERS_AHEAD)
            .filter(|path| !reading.contains_key(*path))
            .take(FOLDERS_AHEAD.saturating_sub(reading.len()))
            .map(str::to_string)
            .collect();
        for path in wanted {
            let task = tokio::spawn(read(path.clone()));
            reading.insert(path, task);
        }
        let Some(next) = walk.next() else { break };
        let item = match next {
            Next::Item(item) => item,
            Next::Read(dir) => {
                let task = match reading.remove(&dir) {
                    Some(task) => task,
                    None => tokio::spawn(read(dir.clone())),
                };
                match joined(task).await {
                    Some(Ok(entries)) => {
                        walk.enter(&dir, entries);
                        continue;
                    }
                    Some(Err(e)) => failed(dir, e),
                    None => break, // the runtime is shutting down
                }
            }
        };
        if tx.send(item).await.is_err() {
            break;
        }
    }
    reading.values().for_each(JoinHandle::abort);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of folder `dir` of a tree given as full paths (folders end in `/`).
    fn read(tree: &[impl AsRef<str>], dir: &str) -> Vec<Entry<String>> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        tree.iter()
            .filter_map(|p| p.as_ref().strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty())
            .filter_map(|rest| match rest.split_once('/') {
                Some((name, "")) => Some(Entry::Dir(name.to_string())),
                Some(_) => None,
                None => Some(Entry::Item(rest.to_string(), format!("{prefix}{rest}"))),
            })
            .collect()
    }

    /// Walk a tree given as full paths, reading folders from it.
    fn walk(tree: &[&str]) -> Vec<String> {
        let mut walk = SortedWalk::default();
        walk.enter("", read(tree, ""));
        let mut out = Vec::new();
        while let Some(next) = walk.next() {
            match next {
                Next::Read(dir) => {
                    let entries = read(tree, &dir);
                    walk.enter(&dir, entries);
                }
                Next::Item(path) => out.push(path),
            }
        }
        out
    }

    #[tokio::test]
    async fn a_walk_ahead_reads_folders_at_once_and_still_yields_path_order() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::Arc;
        let mut tree: Vec<String> = vec!["z".into(), "bad/".into(), "bad/lost".into()];
        for d in 0..30 {
            for p in ["/", "/f", "/s/", "/s/g", "/s/t/", "/s/t/h"] {
                tree.push(format!("d{d:02}{p}"));
            }
        }
        let tree = Arc::new(tree);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let reader = {
            let (tree, now, most) = (tree.clone(), now.clone(), most.clone());
            move |dir: String| {
                let (tree, now, most) = (tree.clone(), now.clone(), most.clone());
                async move {
                    most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                    // Later folders often finish first.
                    let ms = 9 - dir.bytes().map(u64::from).sum::<u64>() % 9;
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    now.fetch_sub(1, SeqCst);
                    match dir.as_str() {
                        "bad" => Err(format!("cannot read {dir}")),
                        _ => Ok(read(&tree, &dir)),
                    }
                }
            }
        };
        let (tx, mut rx) = mpsc::channel(4);
        let first = read(&tree, "");
        tokio::spawn(walk_ahead(
            first,
            reader,
            |path, e| format!("{path}: {e}"),
            tx,
        ));
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
        }
        let mut files: Vec<String> = tree
            .iter()
            .filter(|p| !p.ends_with('/') && !p.starts_with("bad/"))
            .cloned()
            .collect();
        files.push("bad: cannot read bad".into());
        files.sort();
        assert_eq!(got, files);
        let most = most.load(SeqCst);
        assert!((2..=FOLDERS_AHEAD).contains(&most), "{most} reads at once");
    }

    #[test]
    fn a_walk_yields_full_paths_in_byte_order() {
        let tree = [
            "a0", "a/", "a/x", "a/y/", "a/y/z", "a.txt", "a-b", "B", "é", "a/y-", "a/y0", "z/",
        ];
        let got = walk(&tree);
        let mut files: Vec<String> = tree
            .iter()
            .filter(|p| !p.ends_with('/'))
            .map(|p| p.to_string())
            .collect();
        files.sort();
        assert_eq!(got, files);
        assert_eq!(got[..4], ["B", "a-b", "a.txt", "a/x"]);
    }
}
