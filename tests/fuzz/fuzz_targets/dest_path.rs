//! Destination path mapping: a (prefix, source path) pair the worker accepts for Blob is
//! stored under exactly that name. The URL we build decodes back to the same segments, so
//! two different accepted paths can never land on one blob.
#![no_main]

use backup_common::storage::azure::url_path::push_segments;
use backup_common::storage::blob::names;
use backup_common::message::paths::check_prefix;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (prefix, path) = text.split_once('\u{1}').unwrap_or(("", text));
    if check_prefix("destination.prefix", prefix).is_err() || path.is_empty() {
        return;
    }
    let name = if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    };
    if names::check(&name).is_err() {
        return;
    }
    let mut url = url::Url::parse("https://account.blob.core.windows.net/container").unwrap();
    push_segments(&mut url, name.split('/'));
    // What an HTTP client sends is the serialised URL, parsed again.
    let sent = url::Url::parse(url.as_str()).expect("our URL parses");
    let decoded: Vec<String> = sent
        .path_segments()
        .expect("a base URL")
        .skip(1)
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .expect("UTF-8")
                .into_owned()
        })
        .collect();
    assert_eq!(
        decoded.join("/"),
        name,
        "the blob name changed on its way into the URL"
    );
});
