//! The storage registry: a profile's `TYPE` picks the implementation. The only place that knows
//! every kind of storage.

use std::sync::Arc;

use crate::config::Profiles;
use crate::error::{Error, Result};
use crate::message::{DestinationRef, SourceRef, TargetRef};
use crate::storage::blob::{BlobConfig, BlobDestination};
use crate::storage::files::{FilesConfig, FilesDestination};
use crate::storage::sftp::{SftpConfig, SftpDestination, SftpSource};
use crate::storage::Destination;
use crate::storage::Source;

pub const TYPE_SFTP: &str = "sftp";
pub const TYPE_AZURE_BLOB: &str = "azureblob";
pub const TYPE_AZURE_FILES: &str = "azurefiles";

pub fn source(profiles: &Profiles, r: &SourceRef) -> Result<Arc<dyn Source>> {
    let p = profiles.profile(&r.storage)?;
    match p.kind().as_str() {
        TYPE_SFTP => Ok(Arc::new(SftpSource::new(SftpConfig::from_profile(&p)?))),
        TYPE_AZURE_BLOB | TYPE_AZURE_FILES => Err(Error::WrongStorageKind {
            storage: r.storage.clone(),
            actual: "Azure",
            role: "a backup source",
        }),
        other => Err(unknown_type(&p, other)),
    }
}

pub fn destination(profiles: &Profiles, r: &DestinationRef) -> Result<Arc<dyn Destination>> {
    match azure(profiles, r, "destination", "a backup destination")? {
        Azure::Blob(blob) => Ok(blob),
        Azure::Files(files) => Ok(files),
    }
}

/// A restore's or a verify's source: a mirror a backup wrote in Blob or Files.
/// `role`: where the message names it (`source` in a restore, `destination` in a verify).
pub fn mirror(profiles: &Profiles, r: &DestinationRef, role: &str) -> Result<Arc<dyn Source>> {
    match azure(profiles, r, role, "a mirror to read")? {
        Azure::Blob(blob) => Ok(blob),
        Azure::Files(files) => Ok(files),
    }
}

/// The state store of a restore run in parts: the mirror it reads (a target would show the
/// state to a later backup of it as data).
pub fn mirror_state(profiles: &Profiles, r: &DestinationRef) -> Result<Arc<dyn Destination>> {
    match azure(profiles, r, "source", "a mirror to read")? {
        Azure::Blob(blob) => Ok(blob),
        Azure::Files(files) => Ok(files),
    }
}

/// A restore's target: an SFTP directory, or a container or share and a prefix.
pub fn target(profiles: &Profiles, r: &TargetRef) -> Result<Arc<dyn Destination>> {
    let p = profiles.profile(&r.storage)?;
    if p.kind() == TYPE_SFTP {
        let azure_field = [
            ("container", r.container.is_some()),
            ("share", r.share.is_some()),
            ("prefix", !r.prefix.is_empty()),
        ];
        if let Some((field, _)) = azure_field.iter().find(|(_, set)| *set) {
            return Err(Error::invalid_field(
                format!("target.{field}"),
                format!(
                    "is for Azure storages, but `{}` is an SFTP storage: use `target.path`",
                    r.storage
                ),
            ));
        }
        let path = r.path.as_deref().ok_or_else(|| {
            Error::invalid_field(
                "target.path",
                "is required: the SFTP directory to restore into",
            )
        })?;
        let source = SftpSource::new(SftpConfig::from_profile(&p)?);
        return Ok(Arc::new(SftpDestination::new(source, path)));
    }
    if r.path.is_some() {
        return Err(Error::invalid_field(
            "target.path",
            format!(
                "is for SFTP storages, but `{}` is an Azure storage: use `target.prefix`",
                r.storage
            ),
        ));
    }
    match azure(profiles, &r.as_destination(), "target", "a restore target")? {
        Azure::Blob(blob) => Ok(blob),
        Azure::Files(files) => Ok(files),
    }
}

/// An Azure storage: each kind reads (a mirror) and writes (a backup, a restore).
enum Azure {
    Blob(Arc<BlobDestination>),
    Files(Arc<FilesDestination>),
}

/// `role` names where `r` sits in the message (`destination`, `source`, `target`), for errors.
fn azure(
    profiles: &Profiles,
    r: &DestinationRef,
    role: &str,
    used_as: &'static str,
) -> Result<Azure> {
    let p = profiles.profile(&r.storage)?;
    let in_role = |e: Error| match e {
        Error::InvalidField { field, reason } => Error::InvalidField {
            field: field.replacen("destination.", &format!("{role}."), 1),
            reason: reason.replace("`destination.", &format!("`{role}.")),
        },
        e => e,
    };
    match p.kind().as_str() {
        TYPE_AZURE_BLOB => {
            if r.share.is_some() {
                return Err(Error::invalid_field(
                    format!("{role}.share"),
                    format!("is for Azure Files, but `{}` is an Azure Blob storage: use `{role}.container`", r.storage),
                ));
            }
            let blob = BlobDestination::new(
                BlobConfig::from_profile(&p)?,
                r.container.clone(),
                &r.prefix,
            );
            Ok(Azure::Blob(Arc::new(blob.map_err(in_role)?)))
        }
        TYPE_AZURE_FILES => {
            if r.container.is_some() {
                return Err(Error::invalid_field(
                    format!("{role}.container"),
                    format!(
                        "is for Azure Blob, but `{}` is an Azure Files storage: use `{role}.share`",
                        r.storage
                    ),
                ));
            }
            let files =
                FilesDestination::new(FilesConfig::from_profile(&p)?, r.share.clone(), &r.prefix);
            Ok(Azure::Files(Arc::new(files.map_err(in_role)?)))
        }
        TYPE_SFTP => Err(Error::WrongStorageKind {
            storage: r.storage.clone(),
            actual: "SFTP",
            role: used_as,
        }),
        other => Err(unknown_type(&p, other)),
    }
}

fn unknown_type(p: &crate::config::Profile<'_>, other: &str) -> Error {
    p.invalid(
        "TYPE",
        format!("`{other}` is not a storage type: use `{TYPE_SFTP}`, `{TYPE_AZURE_BLOB}` or `{TYPE_AZURE_FILES}`"),
    )
}
