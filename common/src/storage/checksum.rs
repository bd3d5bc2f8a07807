//! The integrity value a write request carries so the service checks what it received.
//!
//! Each byte is hashed with MD5 once, for the whole file (the Content-MD5 that incremental runs,
//! verify and restores compare). A request of a file's only chunk reuses that MD5. A request of
//! one chunk among many carries the chunk's CRC-64 (`x-ms-content-crc64`, which Blob Put Block
//! and Files Put Range accept in place of Content-MD5): a SIMD CRC costs a few hundredths of
//! what a second MD5 pass did, and MD5s of chunks cannot make the file's MD5 anyway.
//!
//! `CHUNK_CHECKSUM=md5` makes chunks carry their own MD5 instead (one more MD5 pass over every
//! byte, in the worker): for endpoints that compute CRC-64 slowly. The Azurite emulator does it
//! in JavaScript whenever a block comes without Content-MD5 (measured: ~16 CPU s a GiB of
//! blocks, against ~2 for the MD5 pass), so on one machine beside it MD5 is the cheaper whole.

use base64::Engine;
use bytes::Bytes;

use crate::config::Profile;
use crate::error::Result;

pub const OPT_CHUNK_CHECKSUM: &str = "CHUNK_CHECKSUM";

/// What each chunk's request carries (an Azure storage's `CHUNK_CHECKSUM` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkChecksum {
    #[default]
    Crc64,
    Md5,
}

impl ChunkChecksum {
    pub fn from_profile(p: &Profile<'_>) -> Result<ChunkChecksum> {
        match p.get(OPT_CHUNK_CHECKSUM).map(|v| v.to_ascii_lowercase()) {
            None => Ok(ChunkChecksum::Crc64),
            Some(v) if v == "crc64" => Ok(ChunkChecksum::Crc64),
            Some(v) if v == "md5" => Ok(ChunkChecksum::Md5),
            Some(v) => Err(p.invalid(
                OPT_CHUNK_CHECKSUM,
                format!("{v:?} is neither `crc64` (the default) nor `md5`"),
            )),
        }
    }

    /// The value for `chunk`'s request (an MD5 is computed off the async threads).
    pub async fn of(self, chunk: &Bytes) -> Result<BodySum> {
        match self {
            ChunkChecksum::Crc64 => Ok(BodySum::crc64_of(chunk)),
            ChunkChecksum::Md5 => Ok(BodySum::Md5(
                crate::transfer::digest::md5_of(chunk.clone()).await?,
            )),
        }
    }
}

/// A request body's integrity value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySum {
    Md5([u8; 16]),
    /// CRC-64/NVME, Azure Storage's CRC-64 (polynomial 0x9A6C9329AC4BC9B5, reflected).
    Crc64(u64),
}

impl BodySum {
    pub fn crc64_of(data: &[u8]) -> BodySum {
        let mut digest = crc64fast_nvme::Digest::new();
        digest.write(data);
        BodySum::Crc64(digest.sum64())
    }

    pub fn md5_of(data: &[u8]) -> BodySum {
        BodySum::Md5(md5_simd::digest(data))
    }

    /// The request header that carries it, and the header's value.
    pub fn azure_header(&self) -> (&'static str, String) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            BodySum::Md5(md5) => ("content-md5", b64(md5)),
            // Azure sends and takes the CRC's 8 bytes little-endian, base64-encoded.
            BodySum::Crc64(crc) => ("x-ms-content-crc64", b64(&crc.to_le_bytes())),
        }
    }

    /// 32 hex digits naming these bytes. Both kinds give the same length: a Blob's block ids
    /// must all be as long as one another, staged ones of earlier attempts included.
    pub fn hex32(&self) -> String {
        match self {
            BodySum::Md5(md5) => md5.iter().map(|b| format!("{b:02x}")).collect(),
            BodySum::Crc64(crc) => format!("{crc:032x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_azures() {
        // Azure's own check value of its CRC-64 for "123456789" (CRC-64/NVME's catalogue check).
        assert_eq!(
            BodySum::crc64_of(b"123456789"),
            BodySum::Crc64(0xae8b_1486_0a79_9888)
        );
        let (name, value) = BodySum::Crc64(0x0102_0304_0506_0708).azure_header();
        assert_eq!(name, "x-ms-content-crc64");
        assert_eq!(value, "CAcGBQQDAgE=");
    }

    #[test]
    fn chunk_checksum_option() {
        let parse = |value: Option<&str>| {
            let mut vars = std::collections::HashMap::new();
            vars.insert(
                "BACKUP_STORAGE_ARCHIVE_TYPE".to_string(),
                "azureblob".to_string(),
            );
            if let Some(v) = value {
                vars.insert(
                    "BACKUP_STORAGE_ARCHIVE_CHUNK_CHECKSUM".to_string(),
                    v.to_string(),
                );
            }
            let profiles = crate::config::Profiles::from_vars(vars);
            let profile = profiles.profile("archive").expect("profile");
            ChunkChecksum::from_profile(&profile).map_err(|e| e.to_string())
        };
        assert_eq!(parse(None), Ok(ChunkChecksum::Crc64));
        assert_eq!(parse(Some("MD5")), Ok(ChunkChecksum::Md5));
        assert_eq!(parse(Some("crc64")), Ok(ChunkChecksum::Crc64));
        let refused = parse(Some("sha1")).unwrap_err();
        assert!(
            refused.contains("CHUNK_CHECKSUM") && refused.contains("sha1"),
            "{refused}"
        );
    }

    #[test]
    fn both_kinds_name_bytes_in_32_hex_digits() {
        assert_eq!(BodySum::md5_of(b"x").hex32().len(), 32);
        assert_eq!(BodySum::crc64_of(b"x").hex32().len(), 32);
        assert_ne!(
            BodySum::crc64_of(b"x").hex32(),
            BodySum::crc64_of(b"y").hex32()
        );
    }
}
