//! The corpus of refused messages (`tests/bad-messages/`): each file, and what it must produce
//! (`cases.tsv`: exit code, error code, words the message must contain). Every entry point
//! that takes messages is driven with it.

use std::path::{Path, PathBuf};

use crate::repo_root;

pub struct Case {
    pub file: String,
    pub exit: i32,
    pub code: String,
    pub words: String,
}

fn dir() -> PathBuf {
    repo_root().join("tests/bad-messages")
}

pub fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.tsv")).expect("cases.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "cases.tsv line {l:?}");
            Case {
                file: cols[0].to_string(),
                exit: cols[1].parse().expect("exit code"),
                code: cols[2].to_string(),
                words: cols[3].to_string(),
            }
        })
        .collect()
}

impl Case {
    /// The message bytes with `@SRC@` replaced by the test's source directory.
    pub fn message(&self, src: &Path) -> Vec<u8> {
        let bytes = std::fs::read(dir().join(&self.file)).expect("corpus file");
        let src = src.display().to_string();
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = &bytes[..];
        while let Some(at) = rest.windows(5).position(|w| w == b"@SRC@") {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(src.as_bytes());
            rest = &rest[at + 5..];
        }
        out.extend_from_slice(rest);
        out
    }

    /// Whether an error (code and message) is the one this case expects; `Err` says why not.
    pub fn judge(&self, code: &str, message: &str) -> Result<(), String> {
        if code != self.code {
            return Err(format!("code {code}, expected {}: {message}", self.code));
        }
        if !message.contains(&self.words) {
            return Err(format!("message {message:?} lacks {:?}", self.words));
        }
        Ok(())
    }
}
