//! The custom-handler invocation payload: `{"Data": {binding: value}, "Metadata": {...}}`.
//! A queue message may arrive as a JSON string, as an already-parsed object, or still base64
//! (a queue written without the host's encoding): all three give the message text.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Invocation {
    #[serde(rename = "Data", default)]
    pub data: serde_json::Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: serde_json::Map<String, Value>,
}

impl Invocation {
    /// The job message bound to `binding`, as bytes (the library judges their encoding).
    pub fn message_bytes(&self, binding: &str) -> Option<Vec<u8>> {
        match self.data.get(binding)? {
            Value::String(text) => Some(decode_if_base64(text)),
            Value::Null => None,
            other => Some(other.to_string().into_bytes()),
        }
    }

    /// The queue message id the host reports (for logs).
    pub fn message_id(&self) -> String {
        self.metadata
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// Text that is not JSON but is base64 is decoded (whatever its bytes are: a UTF-16 message
/// must be named as such, not as bad JSON); anything else is kept as is.
fn decode_if_base64(text: &str) -> Vec<u8> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return text.as_bytes().to_vec();
    }
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()
        .filter(|decoded| !decoded.is_empty())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(data: Value) -> Invocation {
        serde_json::from_value(
            serde_json::json!({"Data": {"message": data}, "Metadata": {"Id": "m1"}}),
        )
        .unwrap()
    }

    #[test]
    fn all_three_shapes_give_the_text() {
        let text = r#"{"kind": "test_connection"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(
            invocation(Value::String(text.into()))
                .message_bytes("message")
                .unwrap(),
            text.as_bytes()
        );
        assert_eq!(
            invocation(Value::String(b64))
                .message_bytes("message")
                .unwrap(),
            text.as_bytes()
        );
        let obj = invocation(serde_json::json!({"kind": "test_connection"}))
            .message_bytes("message")
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&obj).unwrap()["kind"],
            "test_connection"
        );
        assert_eq!(
            invocation(Value::String("not base64 {".into()))
                .message_bytes("message")
                .unwrap(),
            b"not base64 {"
        );
        assert_eq!(invocation(Value::Null).message_bytes("message"), None);
        assert_eq!(invocation(Value::Null).message_id(), "m1");
    }

    #[test]
    fn a_base64_message_in_another_encoding_is_named_as_such() {
        let utf16: Vec<u8> = "\u{feff}{\"kind\": \"test_connection\"}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&utf16);
        let bytes = invocation(Value::String(b64))
            .message_bytes("message")
            .unwrap();
        let e = backup_common::message::JobMessage::parse_bytes(&bytes).unwrap_err();
        assert_eq!(e.code(), "message.malformed");
        assert!(e.to_string().contains("UTF-16 little-endian"), "{e}");
    }
}
