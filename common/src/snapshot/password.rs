//! The repository password, resolved like every other secret: from the storage's profile, never
//! from a message. `RESTIC_PASSWORD` (the seed's key), or `RESTIC_PASSWORD_FILE` naming a file
//! that holds it (restic's convention: one trailing newline is not part of it).

use crate::config::{Profiles, Secret};
use crate::error::{Error, Result};

pub const OPT_PASSWORD: &str = "RESTIC_PASSWORD";
pub const OPT_PASSWORD_FILE: &str = "RESTIC_PASSWORD_FILE";

/// The password of the repository kept in `storage`.
pub fn repository_password(profiles: &Profiles, storage: &str) -> Result<Secret> {
    let p = profiles.profile(storage)?;
    let (direct, file) = (p.secret(OPT_PASSWORD), p.get(OPT_PASSWORD_FILE));
    match (direct, file) {
        (Some(_), Some(_)) => Err(p.invalid(
            OPT_PASSWORD_FILE,
            format!("and {} are both set: keep one", p.var_name(OPT_PASSWORD)),
        )),
        (Some(password), None) => Ok(password),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                p.invalid(
                    OPT_PASSWORD_FILE,
                    format!("cannot read `{path}`: {}", e.kind()),
                )
            })?;
            let password = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if password.is_empty() {
                return Err(p.invalid(OPT_PASSWORD_FILE, format!("`{path}` is empty")));
            }
            Ok(Secret::new(password))
        }
        (None, None) => Err(Error::PasswordMissing {
            storage: storage.to_string(),
            variable: p.var_name(OPT_PASSWORD),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(extra: &[(&str, &str)]) -> Profiles {
        let mut vars = vec![(
            "BACKUP_STORAGE_REPO_TYPE".to_string(),
            "azureblob".to_string(),
        )];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Profiles::from_vars(vars)
    }

    #[test]
    fn from_the_profile_or_a_file_never_both() {
        let direct = profiles(&[("BACKUP_STORAGE_REPO_RESTIC_PASSWORD", "s3cret ")]);
        assert_eq!(
            repository_password(&direct, "repo").unwrap().expose(),
            "s3cret "
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.display().to_string();
        let from_file = profiles(&[("BACKUP_STORAGE_REPO_RESTIC_PASSWORD_FILE", &path)]);
        assert_eq!(
            repository_password(&from_file, "repo").unwrap().expose(),
            "from-file"
        );

        let both = profiles(&[
            ("BACKUP_STORAGE_REPO_RESTIC_PASSWORD", "a"),
            ("BACKUP_STORAGE_REPO_RESTIC_PASSWORD_FILE", &path),
        ]);
        let e = repository_password(&both, "repo").unwrap_err();
        assert_eq!(e.code(), "config.invalid_option");
    }

    #[test]
    fn a_missing_password_names_the_variable() {
        let e = repository_password(&profiles(&[]), "repo").unwrap_err();
        assert_eq!(e.code(), "snapshot.password_missing");
        assert!(
            e.to_string()
                .contains("BACKUP_STORAGE_REPO_RESTIC_PASSWORD"),
            "{e}"
        );

        let missing = profiles(&[(
            "BACKUP_STORAGE_REPO_RESTIC_PASSWORD_FILE",
            "/nonexistent/pw",
        )]);
        let e = repository_password(&missing, "repo").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }
}
