//! The storage registry: a profile's `TYPE` picks the implementation. The only place that knows
//! every kind of storage.

use std::sync::Arc;

use crate::config::Profiles;
use crate::error::{Error, Result};
use crate::message::{DestinationRef, SourceRef};
use crate::storage::blob::{BlobConfig, BlobDestination};
use crate::storage::files::{FilesConfig, FilesDestination};
use crate::storage::sftp::{SftpConfig, SftpSource};
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
    let p = profiles.profile(&r.storage)?;
    match p.kind().as_str() {
        TYPE_AZURE_BLOB => {
            if r.share.is_some() {
                return Err(Error::invalid_field(
                    "destination.share",
                    format!("is for Azure Files, but `{}` is an Azure Blob storage: use `destination.container`", r.storage),
                ));
            }
            Ok(Arc::new(BlobDestination::new(
                BlobConfig::from_profile(&p)?,
                r.container.clone(),
                &r.prefix,
            )?))
        }
        TYPE_AZURE_FILES => {
            if r.container.is_some() {
                return Err(Error::invalid_field(
                    "destination.container",
                    format!("is for Azure Blob, but `{}` is an Azure Files storage: use `destination.share`", r.storage),
                ));
            }
            Ok(Arc::new(FilesDestination::new(
                FilesConfig::from_profile(&p)?,
                r.share.clone(),
                &r.prefix,
            )?))
        }
        TYPE_SFTP => Err(Error::WrongStorageKind {
            storage: r.storage.clone(),
            actual: "SFTP",
            role: "a backup destination",
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
