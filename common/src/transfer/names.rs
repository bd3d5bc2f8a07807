//! Which source paths may be written under their own name. Two source paths must never land
//! on one destination path, and nothing may land in the worker's state folder: a file that
//! would is refused (`dest.invalid_name`), naming the reason, and the rest goes on.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::storage::{Destination, RESERVED_DIR};

/// A listed name must be a relative path that stays under the destination root. Our own
/// listings never produce anything else, but a mirror's names are whatever was put in the
/// container: `../x`, `/etc/x` or `a//b` would escape or be rewritten by a file system.
/// (Characters a destination cannot store are its own `check_name`'s business.)
pub fn check_stays_inside(path: &str) -> Result<()> {
    let refuse = |reason| {
        Err(Error::UnsafeName {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("it is empty");
    }
    if path.starts_with('/') {
        return refuse("it is an absolute path");
    }
    for segment in path.split('/') {
        match segment {
            ".." => return refuse("it contains a `..` folder, which leads out of the target"),
            "." => return refuse("it contains a `.` folder"),
            "" => return refuse("it contains an empty folder name (`//` or a trailing `/`)"),
            _ => {}
        }
    }
    Ok(())
}

/// Remembers the names a job has accepted, for destinations whose names ignore case.
pub struct NameGuard {
    /// Lower-cased path → the first source path that took it (only when the destination
    /// folds case, like Azure Files).
    folded: Option<HashMap<String, String>>,
}

impl NameGuard {
    pub fn new(dest: &dyn Destination) -> Self {
        NameGuard {
            folded: dest.capability().names_ignore_case.then(HashMap::new),
        }
    }

    /// Accept `path` for `dest`, or say why it cannot be stored under its own name.
    pub fn admit(&mut self, dest: &dyn Destination, path: &str) -> Result<()> {
        check_stays_inside(path)?;
        if path.split('/').next() == Some(RESERVED_DIR) {
            return Err(Error::InvalidName {
                path: path.to_string(),
                service: "this worker",
                reason: format!(
                    "the top-level folder `{RESERVED_DIR}` holds the worker's own state; rename the source folder"
                ),
            });
        }
        dest.check_name(path)?;
        if let Some(folded) = &mut self.folded {
            let key = path.to_lowercase();
            match folded.get(&key) {
                Some(first) if first != path => {
                    return Err(Error::InvalidName {
                        path: path.to_string(),
                        service: "Azure Files",
                        reason: format!(
                            "names ignore case there, so it would replace `{first}`; rename one of them"
                        ),
                    })
                }
                Some(_) => {}
                None => {
                    folded.insert(key, path.to_string());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_stays_inside;

    #[test]
    fn names_that_would_leave_the_target_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a/",
            "",
        ] {
            let e = check_stays_inside(bad).expect_err(bad);
            assert_eq!(e.code(), "restore.unsafe_name", "{bad}");
        }
        for good in ["a", "a/b.txt", "..x/y", "x..", "ünï cödé/ f.txt"] {
            check_stays_inside(good).expect(good);
        }
    }
}
