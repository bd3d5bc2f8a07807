//! The one order every listing keeps: **byte order of the whole relative path** (what `str`'s
//! `Ord` is). Both sides of a copy list in it, so the engine can walk them side by side (a merge)
//! instead of holding either whole in memory.
//!
//! A flat store (Blob) lists in it already. A hierarchical one (SFTP, Azure Files) gets it by
//! walking depth first with each directory's entries sorted as if a folder's name ended in `/`:
//! `a-b` < `a.txt` < `a/x` < `a0`, exactly as the full paths compare. Memory holds the sorted
//! entries of the folders on the way down, never the tree.

use std::cmp::Ordering;

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
}

impl<T> Default for SortedWalk<T> {
    fn default() -> Self {
        SortedWalk { stack: Vec::new() }
    }
}

impl<T> SortedWalk<T> {
    /// The entries of folder `dir` (`""`: the root) were read: they come next, in order.
    pub fn enter(&mut self, dir: &str, mut entries: Vec<Entry<T>>) {
        entries.sort_by(|a, b| walk_order(a.name(), b.name()));
        for entry in entries.into_iter().rev() {
            self.stack.push(match entry {
                Entry::Dir(name) => Pending::Dir(child(dir, &name)),
                Entry::Item(_, item) => Pending::Item(item),
            });
        }
    }
}

impl<T> Iterator for SortedWalk<T> {
    type Item = Next<T>;

    fn next(&mut self) -> Option<Next<T>> {
        Some(match self.stack.pop()? {
            Pending::Dir(path) => Next::Read(path),
            Pending::Item(item) => Next::Item(item),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk a tree given as full paths (folders end in `/`), reading folders from it.
    fn walk(tree: &[&str]) -> Vec<String> {
        let read = |dir: &str| -> Vec<Entry<String>> {
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            tree.iter()
                .filter_map(|p| p.strip_prefix(&prefix))
                .filter(|rest| !rest.is_empty())
                .filter_map(|rest| match rest.split_once('/') {
                    Some((name, "")) => Some(Entry::Dir(name.to_string())),
                    Some(_) => None,
                    None => Some(Entry::Item(rest.to_string(), format!("{prefix}{rest}"))),
                })
                .collect()
        };
        let mut walk = SortedWalk::default();
        walk.enter("", read(""));
        let mut out = Vec::new();
        while let Some(next) = walk.next() {
            match next {
                Next::Read(dir) => {
                    let entries = read(&dir);
                    walk.enter(&dir, entries);
                }
                Next::Item(path) => out.push(path),
            }
        }
        out
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
