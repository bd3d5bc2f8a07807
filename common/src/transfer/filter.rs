//! Include/exclude globs over paths relative to the source root.
//! `*` stays inside one directory level, `**` crosses levels, and a pattern without `/` matches
//! a name at any depth (`*.tmp` is `**/*.tmp`). Exclude wins over include.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// Exact files or folders (a restore's `paths`); `None`: every path.
    paths: Option<GlobSet>,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        let include = if include.is_empty() {
            None
        } else {
            Some(build("include", include)?)
        };
        Ok(Filter {
            include,
            exclude: build("exclude", exclude)?,
            paths: None,
        })
    }

    /// Also keep only `paths` (each a file, or a folder with everything under it), taken
    /// literally: `[` or `*` in a name are characters, not patterns.
    pub fn within(mut self, paths: &[String]) -> Result<Self> {
        if paths.is_empty() {
            return Ok(self);
        }
        let mut set = GlobSetBuilder::new();
        for (i, path) in paths.iter().enumerate() {
            let literal = globset::escape(path.trim_end_matches('/'));
            for variant in [literal.clone(), format!("{literal}/**")] {
                let glob = GlobBuilder::new(&variant)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::invalid_field(format!("paths[{i}]"), e.to_string()))?;
                set.add(glob);
            }
        }
        let set = set
            .build()
            .map_err(|e| Error::invalid_field("paths", e.to_string()))?;
        self.paths = Some(set);
        Ok(self)
    }

    pub fn matches(&self, path: &str) -> bool {
        if self.exclude.is_match(path) {
            return false;
        }
        self.paths.as_ref().is_none_or(|set| set.is_match(path))
            && self.include.as_ref().is_none_or(|set| set.is_match(path))
    }
}

fn build(field: &str, patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let p = pattern.trim_start_matches('/');
        let p = if pattern.contains('/') {
            p.to_string()
        } else {
            format!("**/{p}")
        };
        for variant in [p.clone(), format!("{p}/**")] {
            let glob = GlobBuilder::new(&variant)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    Error::invalid_field(
                        format!("{field}[{i}]"),
                        format!("is not a valid glob: {e}"),
                    )
                })?;
            set.add(glob);
        }
    }
    set.build()
        .map_err(|e| Error::invalid_field(field, format!("is not a valid glob set: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(include: &[&str], exclude: &[&str]) -> Filter {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(&v(include), &v(exclude)).unwrap()
    }

    #[test]
    fn empty_filter_takes_everything() {
        assert!(f(&[], &[]).matches("a/b/c.txt"));
    }

    #[test]
    fn name_patterns_match_at_any_depth() {
        let filter = f(&["*.pdf"], &[]);
        assert!(filter.matches("x.pdf"));
        assert!(filter.matches("deep/down/x.pdf"));
        assert!(!filter.matches("x.txt"));
    }

    #[test]
    fn path_patterns_are_anchored_and_cover_subtrees() {
        let filter = f(&["docs/*.md"], &[]);
        assert!(filter.matches("docs/a.md"));
        assert!(!filter.matches("docs/sub/a.md"));
        assert!(!filter.matches("other/docs/a.md"));
        assert!(f(&["docs"], &[]).matches("x/docs/sub/a.md"));
        assert!(f(&["/docs"], &[]).matches("docs/sub/a.md"));
    }

    #[test]
    fn exclude_wins() {
        let filter = f(&["**"], &["*.tmp", "cache/**"]);
        assert!(!filter.matches("a/b.tmp"));
        assert!(!filter.matches("cache/x"));
        assert!(filter.matches("a/b.txt"));
    }
}
