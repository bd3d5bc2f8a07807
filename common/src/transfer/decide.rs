//! Whether a file is copied: the one decision the planner and the engine both make, from what
//! the source listed and what the destination already holds.

use crate::message::{CompareMode, Overwrite, TransferOptions};
use crate::storage::{RemoteFile, SourceFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Copy,
    /// The destination's copy stays.
    Skip,
    /// Same size: copy only if the MD5s differ (`compare: hash`), which needs both hashes.
    CompareHashes,
}

pub fn decide(
    file: &SourceFile,
    remote: Option<&RemoteFile>,
    options: &TransferOptions,
) -> Decision {
    let Some(remote) = remote else {
        return Decision::Copy;
    };
    match (options.overwrite, options.compare) {
        (Overwrite::Never, _) => Decision::Skip,
        (Overwrite::Always, _) => Decision::Copy,
        (Overwrite::IfChanged, _) if remote.size != file.size => Decision::Copy,
        (Overwrite::IfChanged, CompareMode::Hash) => Decision::CompareHashes,
        (Overwrite::IfChanged, CompareMode::SizeMtime) => {
            if remote.source_mtime == Some(file.mtime) {
                Decision::Skip
            } else {
                Decision::Copy
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> SourceFile {
        SourceFile {
            path: "a".into(),
            size: 10,
            mtime: 100,
            md5: None,
        }
    }

    fn options(overwrite: Overwrite, compare: CompareMode) -> TransferOptions {
        TransferOptions {
            overwrite,
            compare,
            ..Default::default()
        }
    }

    #[test]
    fn each_policy_decides_as_documented() {
        let same = RemoteFile {
            size: 10,
            source_mtime: Some(100),
            md5: None,
        };
        let newer = RemoteFile {
            source_mtime: Some(200),
            ..same.clone()
        };
        let bigger = RemoteFile {
            size: 11,
            ..same.clone()
        };
        use CompareMode::*;
        use Decision::*;
        use Overwrite::*;
        let cases = [
            (IfChanged, SizeMtime, None, Copy),
            (IfChanged, SizeMtime, Some(&same), Skip),
            (IfChanged, SizeMtime, Some(&newer), Copy),
            (IfChanged, Hash, Some(&same), CompareHashes),
            (IfChanged, Hash, Some(&bigger), Copy),
            (Never, SizeMtime, Some(&newer), Skip),
            (Never, Hash, None, Copy),
            (Always, SizeMtime, Some(&same), Copy),
        ];
        for (overwrite, compare, remote, want) in cases {
            assert_eq!(
                decide(&file(), remote, &options(overwrite, compare)),
                want,
                "{overwrite:?} {compare:?} {remote:?}"
            );
        }
    }
}
