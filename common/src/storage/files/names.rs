//! Azure Files naming rules: some characters are forbidden, components and paths have length
//! limits. A source file that breaks one gets a per-file error naming the rule.

use crate::error::{Error, Result};

pub const MAX_COMPONENT: usize = 255;
pub const MAX_PATH: usize = 2048;
const FORBIDDEN: &[char] = &['"', '\\', ':', '|', '<', '>', '*', '?'];

/// Check a path relative to the share (components separated by `/`).
pub fn check(path: &str) -> Result<()> {
    let fail = |reason: String| Error::InvalidName {
        path: path.to_string(),
        service: "Azure Files",
        reason,
    };
    if path.chars().count() > MAX_PATH {
        return Err(fail(format!(
            "the path is longer than {MAX_PATH} characters"
        )));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(fail("the path has an empty folder name (`//`)".into()));
        }
        if component.chars().count() > MAX_COMPONENT {
            return Err(fail(format!(
                "the name `{}…` is longer than {MAX_COMPONENT} characters",
                component.chars().take(24).collect::<String>()
            )));
        }
        if let Some(c) = component.chars().find(|c| FORBIDDEN.contains(c)) {
            return Err(fail(format!(
                "the character `{c}` is not allowed in names (forbidden: \" \\ / : | < > * ?)"
            )));
        }
        if let Some(c) = component.chars().find(|c| c.is_control()) {
            return Err(fail(format!(
                "the control character U+{:04X} is not allowed in names",
                c as u32
            )));
        }
        if component.ends_with('.') {
            return Err(fail(format!("the name `{component}` ends with `.`")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        check("a/b c/naïve café + x&y (1).txt").unwrap();
    }

    #[test]
    fn each_rule_is_named() {
        for (path, words) in [
            ("a/what?.txt", "`?`"),
            ("a:b", "`:`"),
            ("back\\slash", "`\\`"),
            ("tab\there", "U+0009"),
            ("dir./x", "ends with `.`"),
            ("a//b", "empty folder name"),
        ] {
            let e = check(path).unwrap_err();
            assert_eq!(e.code(), "dest.invalid_name");
            assert!(e.to_string().contains(words), "{path}: {e}");
        }
        let long = "x".repeat(256);
        assert!(check(&long).unwrap_err().to_string().contains("255"));
        let deep = vec!["abcdefgh"; 300].join("/");
        assert!(check(&deep).unwrap_err().to_string().contains("2048"));
    }
}
