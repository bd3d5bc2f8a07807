//! What travels on the wire for the File REST API: header values (times, MD5s, `Retry-After`,
//! error codes) and the XML bodies of listings and range lists.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

pub(super) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The service's error code: `x-ms-error-code` (HEAD has no body), else `<Code>` in the body.
pub(super) fn error_code(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(code) = headers.get("x-ms-error-code").and_then(|v| v.to_str().ok()) {
        return code.to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim().to_string())
        .unwrap_or_default()
}

pub(super) fn header_md5(headers: &HeaderMap) -> Option<[u8; 16]> {
    headers
        .get("content-md5")
        .and_then(|v| v.to_str().ok())
        .and_then(base64_decode)
        .and_then(|b| b.try_into().ok())
}

pub(super) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// `x-ms-file-*-time` format: ISO 8601 with seven fractional digits.
pub(super) fn format_time(unix_secs: i64) -> String {
    let t = azure_core::time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(azure_core::time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(super) fn parse_time(text: &str) -> Option<i64> {
    azure_core::time::parse_rfc3339(text.trim())
        .ok()
        .map(|t| t.unix_timestamp())
}

#[derive(Deserialize)]
pub(super) struct RangesXml {
    #[serde(rename = "Range", default)]
    pub(super) ranges: Vec<RangeXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RangeXml {
    pub(super) start: u64,
    pub(super) end: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListXml {
    pub(super) entries: Option<EntriesXml>,
    pub(super) next_marker: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EntriesXml {
    #[serde(rename = "$value", default)]
    pub(super) items: Vec<EntryXml>,
}

#[derive(Deserialize)]
pub(super) enum EntryXml {
    Directory(DirXml),
    File(FileXml),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DirXml {
    pub(super) name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FileXml {
    pub(super) name: String,
    pub(super) properties: Option<FilePropsXml>,
}

#[derive(Deserialize, Default)]
pub(super) struct FilePropsXml {
    #[serde(rename = "Content-Length")]
    pub(super) content_length: Option<u64>,
    #[serde(rename = "LastWriteTime")]
    pub(super) last_write_time: Option<String>,
    #[serde(rename = "Last-Modified")]
    pub(super) last_modified: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderValue;

    #[test]
    fn times_round_trip_in_the_seven_digit_format() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20.0000000Z");
        assert_eq!(
            parse_time("2023-11-14T22:13:20.0000000Z"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn listing_xml_is_read() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="x" ShareName="s" DirectoryPath="">
          <Entries><Directory><Name>sub dir</Name><Properties/></Directory>
          <File><Name>a &amp; b.txt</Name><Properties><Content-Length>5</Content-Length><LastWriteTime>2023-11-14T22:13:20.0000000Z</LastWriteTime></Properties></File>
          </Entries><NextMarker/></EnumerationResults>"#;
        let page: ListXml = azure_core::xml::from_xml(Bytes::from(xml)).unwrap();
        let items = page.entries.unwrap().items;
        assert!(matches!(&items[0], EntryXml::Directory(d) if d.name == "sub dir"));
        match &items[1] {
            EntryXml::File(f) => {
                assert_eq!(f.name, "a & b.txt");
                let p = f.properties.as_ref().unwrap();
                assert_eq!(p.content_length, Some(5));
                assert_eq!(
                    p.last_write_time.as_deref().and_then(parse_time),
                    Some(1_700_000_000)
                );
            }
            _ => panic!("not a file"),
        }
        assert_eq!(page.next_marker.filter(|m| !m.is_empty()), None);
    }

    #[test]
    fn error_code_from_header_or_body() {
        let mut h = HeaderMap::new();
        assert_eq!(
            error_code(&h, b"<Error><Code>ShareNotFound</Code></Error>"),
            "ShareNotFound"
        );
        h.insert(
            "x-ms-error-code",
            HeaderValue::from_static("ParentNotFound"),
        );
        assert_eq!(error_code(&h, b""), "ParentNotFound");
    }
}
