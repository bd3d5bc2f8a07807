//! Rules for the paths and patterns a message carries. Nothing is rewritten: a value that
//! would need rewriting (a leading `/`, a `.` segment, `//`) is refused, naming the field, so
//! what the worker does is exactly what the message says.

use crate::error::{Error, Result};
use crate::storage::RESERVED_DIR;

/// Blob names are at most 1024 characters (Azure Files paths 2048): a prefix must leave room.
pub const MAX_PREFIX_CHARS: usize = 1024;
/// One path component, in every storage we write (Azure Files' limit; Blob's is larger).
pub const MAX_SEGMENT_CHARS: usize = 255;
/// A source path (SFTP servers take far less; this only bounds what we send).
pub const MAX_PATH_CHARS: usize = 4096;

/// Text that goes to a service: no control characters (they vanish or are rewritten in URLs
/// and XML) and a bounded length.
pub fn check_text(field: &str, text: &str, max_chars: usize) -> Result<()> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::invalid_field(
            field,
            format!(
                "contains the control character U+{:04X}: control characters are not allowed",
                u32::from(c)
            ),
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(Error::invalid_field(
            field,
            format!("is {chars} characters long: at most {max_chars} are allowed"),
        ));
    }
    Ok(())
}

/// A destination prefix: `a/b/c`, or empty for the container's root.
pub fn check_prefix(field: &str, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_text(field, prefix, MAX_PREFIX_CHARS)?;
    if prefix.contains('\\') {
        return Err(Error::invalid_field(
            field,
            "contains `\\`: separate folders with `/` (a backslash is a folder separator to some services and a character to others)",
        ));
    }
    if prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(Error::invalid_field(
            field,
            "must not start or end with `/`: write it as `folder/subfolder`",
        ));
    }
    for segment in prefix.split('/') {
        check_segment(field, segment)?;
        if segment == RESERVED_DIR {
            return Err(Error::invalid_field(
                field,
                format!(
                    "must not contain `{RESERVED_DIR}`: that folder holds the worker's own state"
                ),
            ));
        }
    }
    Ok(())
}

/// A path relative to a root, as the worker itself writes them into part messages.
pub fn check_relative(field: &str, path: &str) -> Result<()> {
    if path.contains('\0') {
        return Err(Error::invalid_field(field, "contains a NUL character"));
    }
    if path.starts_with('/') {
        return Err(Error::invalid_field(
            field,
            "must be a relative path (no leading `/`)",
        ));
    }
    path.split('/').try_for_each(|s| check_segment(field, s))
}

fn check_segment(field: &str, segment: &str) -> Result<()> {
    match segment {
        "" => Err(Error::invalid_field(
            field,
            "has an empty folder name (`//`, or a `/` at an end)",
        )),
        "." | ".." => Err(Error::invalid_field(
            field,
            format!("must not contain a `{segment}` folder"),
        )),
        s if s.chars().count() > MAX_SEGMENT_CHARS => Err(Error::invalid_field(
            field,
            format!("has a folder name longer than {MAX_SEGMENT_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// An include or exclude pattern: an empty one would match nothing or (to globset) everything.
pub fn check_glob(field: &str, glob: &str) -> Result<()> {
    if glob.trim().is_empty() {
        return Err(Error::invalid_field(
            field,
            "is empty: write a pattern such as `*.pdf` or `reports/**`",
        ));
    }
    check_text(field, glob, MAX_PATH_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix_err(p: &str) -> String {
        check_prefix("destination.prefix", p)
            .expect_err(p)
            .to_string()
    }

    #[test]
    fn prefixes_are_taken_as_written_or_refused() {
        for good in ["", "a", "office-nas/2026", "café/ü b", "a.b/..c"] {
            check_prefix("destination.prefix", good).unwrap();
        }
        assert!(prefix_err("a\\..\\b").contains("`\\`"));
        assert!(prefix_err("a\0b").contains("U+0000"));
        assert!(prefix_err("a\tb").contains("U+0009"));
        assert!(prefix_err("/a").contains("start or end"));
        assert!(prefix_err("a/").contains("start or end"));
        assert!(prefix_err("a//b").contains("empty folder"));
        assert!(prefix_err("./a").contains("`.` folder"));
        assert!(prefix_err("a/../b").contains("`..` folder"));
        assert!(prefix_err(".backup-worker").contains("worker's own state"));
        assert!(prefix_err("x/.backup-worker/y").contains("worker's own state"));
        assert!(prefix_err(&"a/".repeat(600)).contains("at most 1024"));
        assert!(prefix_err(&"a".repeat(256)).contains("longer than 255"));
    }

    #[test]
    fn relative_paths_and_globs() {
        check_relative("p", "a/b\\c\td").unwrap();
        assert!(check_relative("p", "/a").is_err());
        assert!(check_relative("p", "a/../b").is_err());
        assert!(check_relative("p", "a//b").is_err());
        assert!(check_glob("include[0]", "").is_err());
        assert!(check_glob("include[0]", "  ").is_err());
        assert!(check_glob("include[0]", "*.pdf").is_ok());
    }
}
