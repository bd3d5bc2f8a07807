//! Storage profiles: a job names a storage, this module finds its options.
//!
//! Options follow rclone's convention `<PREFIX>_<STORAGE>_<OPTION>` with the seeds' option names,
//! e.g. `BACKUP_STORAGE_OFFICE_NAS_SSH_HOST`. They come from the environment and, optionally, from a
//! profile file of `KEY=VALUE` lines named by `BACKUP_PROFILES_FILE`, and from secrets a platform
//! entry point fetched (AWS Secrets Manager); the environment wins over both.
//! Each storage module parses its own options from a [`Profile`]; nothing here knows a service.

mod secret;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

pub use secret::Secret;

use crate::error::{Error, Result};

pub const DEFAULT_PREFIX: &str = "BACKUP_STORAGE";
pub const PROFILES_FILE_VAR: &str = "BACKUP_PROFILES_FILE";

/// All configuration variables visible to a job, looked up by storage name.
#[derive(Clone, Default)]
pub struct Profiles {
    prefix: String,
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show only how many there are.
        f.debug_struct("Profiles")
            .field("prefix", &self.prefix)
            .field("vars", &self.vars.len())
            .finish()
    }
}

impl Profiles {
    /// Profiles from this process's environment, plus the profile file it names.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(HashMap::new())
    }

    /// Like [`Profiles::from_env`], with variables from a secret store under the environment.
    pub fn from_env_with(secret_vars: HashMap<String, String>) -> Result<Self> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(file) = std::env::var(PROFILES_FILE_VAR) {
            vars.extend(read_profile_file(Path::new(&file))?);
        }
        vars.extend(secret_vars);
        vars.extend(std::env::vars());
        Ok(Self::from_vars(vars))
    }

    /// Profiles from an explicit map (tests, embedding).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Profiles {
            prefix: DEFAULT_PREFIX.to_string(),
            vars: vars.into_iter().collect(),
        }
    }

    /// The options of one storage. Fails when nothing at all is configured for it.
    pub fn profile(&self, storage: &str) -> Result<Profile<'_>> {
        let env_prefix = format!("{}_{}", self.prefix, normalize_name(storage));
        let profile = Profile {
            storage: storage.to_string(),
            env_prefix,
            vars: &self.vars,
        };
        if profile.get("TYPE").is_none() {
            return Err(Error::UnknownStorage {
                name: storage.to_string(),
                env_prefix: profile.env_prefix,
            });
        }
        Ok(profile)
    }
}

/// `Office NAS` and `office-nas` both become `OFFICE_NAS`.
pub fn normalize_name(storage: &str) -> String {
    storage
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn read_profile_file(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::MalformedMessage(format!(
            "cannot read profile file {} ({PROFILES_FILE_VAR}): {e}",
            path.display()
        ))
    })?;
    Ok(parse_profile_lines(&text))
}

/// Variables from a secret's text: a JSON object of strings (what the Secrets Manager console
/// writes as key/value pairs), or `KEY=VALUE` lines like a profile file. The error never quotes
/// the text.
pub fn parse_secret_text(text: &str) -> std::result::Result<HashMap<String, String>, String> {
    if text.trim_start().starts_with('{') {
        let map: HashMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| {
            format!(
                "is not a JSON object (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(n) => Ok((k, n.to_string())),
                serde_json::Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(format!("`{k}` must be a string")),
            })
            .collect();
    }
    Ok(parse_profile_lines(text))
}

fn parse_profile_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The options of one named storage.
pub struct Profile<'a> {
    storage: String,
    env_prefix: String,
    vars: &'a HashMap<String, String>,
}

impl std::fmt::Debug for Profile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Profile<'_> {
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// The variable that holds `option`, for messages ("set BACKUP_STORAGE_X_SSH_HOST").
    pub fn var_name(&self, option: &str) -> String {
        format!("{}_{option}", self.env_prefix)
    }

    /// A non-empty option value.
    pub fn get(&self, option: &str) -> Option<String> {
        self.vars
            .get(&self.var_name(option))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A variable by its full name, outside the storage's prefix (`AZURE_CLIENT_ID`): the
    /// runtime environment as the profiles see it (environment, profile file, secret stores).
    pub fn environment(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }

    pub fn secret(&self, option: &str) -> Option<Secret> {
        // Secrets keep their exact bytes (a password may end in a space).
        self.vars
            .get(&self.var_name(option))
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.clone()))
    }

    pub fn require(&self, option: &str) -> Result<String> {
        self.get(option).ok_or_else(|| {
            Error::invalid_option(
                &self.storage,
                option,
                format!("is required: set {}", self.var_name(option)),
            )
        })
    }

    pub fn parse<T: FromStr>(&self, option: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.get(option)
            .map(|v| {
                v.parse::<T>().map_err(|e| {
                    Error::invalid_option(&self.storage, option, format!("`{v}` is not valid: {e}"))
                })
            })
            .transpose()
    }

    pub fn flag(&self, option: &str) -> Result<bool> {
        match self.get(option).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(Error::invalid_option(
                &self.storage,
                option,
                format!("`{v}` is not a boolean (use true or false)"),
            )),
        }
    }

    pub fn kind(&self) -> String {
        self.get("TYPE").unwrap_or_default().to_ascii_lowercase()
    }

    pub fn invalid(&self, option: &str, reason: impl Into<String>) -> Error {
        Error::invalid_option(&self.storage, option, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(pairs: &[(&str, &str)]) -> Profiles {
        Profiles::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn names_are_normalized_like_rclone() {
        assert_eq!(normalize_name("Office NAS"), "OFFICE_NAS");
        assert_eq!(normalize_name("office-nas"), "OFFICE_NAS");
    }

    #[test]
    fn looks_up_options_by_storage_name() {
        let p = profiles(&[
            ("BACKUP_STORAGE_OFFICE_NAS_TYPE", "sftp"),
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_PORT", "2222"),
        ]);
        let nas = p.profile("office_nas").unwrap();
        assert_eq!(nas.kind(), "sftp");
        assert_eq!(nas.parse::<u16>("SSH_PORT").unwrap(), Some(2222));
        let e = nas.require("SSH_HOST").unwrap_err();
        assert!(
            e.to_string().contains("BACKUP_STORAGE_OFFICE_NAS_SSH_HOST"),
            "{e}"
        );
    }

    #[test]
    fn unknown_storage_says_which_variable_to_set() {
        let e = profiles(&[]).profile("archive").unwrap_err();
        assert_eq!(e.code(), "config.unknown_storage");
        assert!(e.to_string().contains("BACKUP_STORAGE_ARCHIVE_TYPE"), "{e}");
    }

    #[test]
    fn bad_values_name_the_option() {
        let p = profiles(&[
            ("BACKUP_STORAGE_X_TYPE", "sftp"),
            ("BACKUP_STORAGE_X_SSH_PORT", "ssh"),
        ]);
        let e = p
            .profile("x")
            .unwrap()
            .parse::<u16>("SSH_PORT")
            .unwrap_err();
        assert!(e.to_string().contains("SSH_PORT"), "{e}");
    }

    #[test]
    fn secret_text_as_json_or_lines() {
        let json = parse_secret_text(
            r#"{"BACKUP_STORAGE_A_ACCOUNT_KEY": "k==", "BACKUP_STORAGE_A_SSH_PORT": 22}"#,
        )
        .unwrap();
        assert_eq!(json["BACKUP_STORAGE_A_ACCOUNT_KEY"], "k==");
        assert_eq!(json["BACKUP_STORAGE_A_SSH_PORT"], "22");
        let lines = parse_secret_text("A=1\nB=two").unwrap();
        assert_eq!(lines["B"], "two");
        let e = parse_secret_text(r#"{"A": "secret-value""#).unwrap_err();
        assert!(!e.contains("secret-value"), "{e}");
    }

    #[test]
    fn profile_file_lines() {
        let vars = parse_profile_lines("# comment\nexport A=1\nB = \"two words\"\n\nC='x'\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x");
    }
}
