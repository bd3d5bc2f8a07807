//! Azure resource names in URLs. Every character outside RFC 3986's unreserved set is
//! percent-encoded by us, so the URL parser has nothing left to drop (tab, CR, LF) or
//! reinterpret (`\`, `%`): the service receives exactly the name we mean.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// Everything but RFC 3986's unreserved characters is percent-encoded: the URL parser then
/// has nothing left to reinterpret.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Append path segments to `url`, each percent-encoded by us (a `/` inside a segment stays
/// data, and no character is left for the URL parser to drop or rewrite).
pub fn push_segments<'a>(url: &mut Url, segments: impl IntoIterator<Item = &'a str>) {
    // `set_path` keeps our `%XX` as they are (`path_segments_mut` would encode the `%` again).
    let mut path = url.path().trim_end_matches('/').to_string();
    for segment in segments {
        path.push('/');
        path.extend(utf8_percent_encode(segment, SEGMENT));
    }
    url.set_path(&path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_survives_the_url() {
        let name = "a b/%41+&?#;=@é'\"<>|:*";
        let mut url = Url::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap();
        push_segments(&mut url, std::iter::once("c").chain(name.split('/')));
        let decoded: Vec<String> = url
            .path_segments()
            .unwrap()
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            decoded,
            ["devstoreaccount1", "c", "a b", "%41+&?#;=@é'\"<>|:*"]
        );
        // Reparsing the serialised URL (what an HTTP client does) changes nothing.
        assert_eq!(Url::parse(url.as_str()).unwrap(), url);
    }
}
