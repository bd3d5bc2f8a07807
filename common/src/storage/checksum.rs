//! The integrity value a write request carries so the service checks what it received.
//!
//! Each byte is hashed with MD5 once, for the whole file (the Content-MD5 that incremental runs,
//! verify and restores compare). A request of a file's only chunk reuses that MD5. A request of
//! one chunk among many carries the chunk's CRC-64 (`x-ms-content-crc64`, which Blob Put Block
//! and Files Put Range accept in place of Content-MD5): a SIMD CRC costs a few hundredths of
//! what a second MD5 pass did, and MD5s of chunks cannot make the file's MD5 anyway.

use base64::Engine;
use md5::{Digest, Md5};

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
        BodySum::Md5(Md5::digest(data).into())
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
    fn both_kinds_name_bytes_in_32_hex_digits() {
        assert_eq!(BodySum::md5_of(b"x").hex32().len(), 32);
        assert_eq!(BodySum::crc64_of(b"x").hex32().len(), 32);
        assert_ne!(
            BodySum::crc64_of(b"x").hex32(),
            BodySum::crc64_of(b"y").hex32()
        );
    }
}
