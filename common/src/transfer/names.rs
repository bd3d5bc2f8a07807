//! Which source paths may be written under their own name. Two source paths must never land
//! on one destination path, and nothing may land in the worker's state folder: a file that
//! would is refused (`dest.invalid_name`), naming the reason, and the rest goes on.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::storage::{Destination, RESERVED_DIR};

/// Remembers the names a job has accepted, for destinations whose names ignore case.
pub struct NameGuard {
    /// Lower-cased path → the first source path that took it (only when the destination
    /// folds case, like Azure Files).
    folded: Option<HashMap<String, String>>,
}

impl NameGuard {
    pub fn new(dest: &dyn Destination) -> Self {
        NameGuard {
            folded: dest.names_ignore_case().then(HashMap::new),
        }
    }

    /// Accept `path` for `dest`, or say why it cannot be stored under its own name.
    pub fn admit(&mut self, dest: &dyn Destination, path: &str) -> Result<()> {
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
