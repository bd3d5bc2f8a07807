//! Azure Blob naming: which names are stored exactly as given, and how they go into a URL.
//!
//! A name is either stored byte for byte or refused (`dest.invalid_name`): the URL parser
//! drops tab, CR and LF, the service reads `\` as `/` and trims a trailing `.`, and XML listings
//! cannot carry most control characters, so any of those would silently store a different
//! name, and two source files could land on one blob.

use crate::error::{Error, Result};

/// Blob names are at most 1024 characters, in at most 254 segments.
pub const MAX_NAME: usize = 1024;
pub const MAX_SEGMENTS: usize = 254;

/// Check a full blob name (prefix included).
pub fn check(name: &str) -> Result<()> {
    let fail = |reason: String| Error::InvalidName {
        path: name.to_string(),
        service: "Azure Blob",
        reason,
    };
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(fail(format!(
            "the control character U+{:04X} is not allowed in blob names",
            u32::from(c)
        )));
    }
    if name.contains('\\') {
        return Err(fail(
            "the character `\\` is not allowed (the service reads it as `/`)".into(),
        ));
    }
    if let Some(segment) = name.split('/').find(|s| matches!(*s, "" | "." | "..")) {
        return Err(fail(format!(
            "the path segment `{segment}` is not allowed (a URL drops or resolves it)"
        )));
    }
    if name.ends_with('.') {
        return Err(fail(
            "a blob name must not end with `.` (the service drops it)".into(),
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(fail(format!(
            "the name is longer than {MAX_NAME} characters"
        )));
    }
    if name.split('/').count() > MAX_SEGMENTS {
        return Err(fail(format!(
            "the name has more than {MAX_SEGMENTS} path segments"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_are_refused() {
        for (name, words) in [
            ("a\tb", "U+0009"),
            ("a\nb", "U+000A"),
            ("dir\\file", "`\\`"),
            ("file.", "end with `.`"),
            ("../up", "segment `..`"),
            ("a/./b", "segment `.`"),
            ("a//b", "segment ``"),
            ("dir/", "segment ``"),
        ] {
            let e = check(name).unwrap_err();
            assert_eq!(e.code(), "dest.invalid_name");
            assert!(e.to_string().contains(words), "{name}: {e}");
        }
        check("prefix/naïve café + x&y (1) #2 ?.txt").unwrap();
        assert!(check(&"x".repeat(1025)).is_err());
        assert!(check(&vec!["a"; 255].join("/")).is_err());
    }
}
