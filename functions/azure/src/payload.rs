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
    /// The job message text bound to `binding`.
    pub fn message_text(&self, binding: &str) -> Option<String> {
        match self.data.get(binding)? {
            Value::String(text) => Some(decode_if_base64(text)),
            Value::Null => None,
            other => Some(other.to_string()),
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

/// Text that is not JSON but is base64 of JSON is decoded; anything else is kept as is.
fn decode_if_base64(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return text.to_string();
    }
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|decoded| decoded.trim_start().starts_with('{'))
        .unwrap_or_else(|| text.to_string())
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
                .message_text("message")
                .unwrap(),
            text
        );
        assert_eq!(
            invocation(Value::String(b64))
                .message_text("message")
                .unwrap(),
            text
        );
        let obj = invocation(serde_json::json!({"kind": "test_connection"}))
            .message_text("message")
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&obj).unwrap()["kind"],
            "test_connection"
        );
        assert_eq!(
            invocation(Value::String("not base64 {".into()))
                .message_text("message")
                .unwrap(),
            "not base64 {"
        );
        assert_eq!(invocation(Value::Null).message_text("message"), None);
        assert_eq!(invocation(Value::Null).message_id(), "m1");
    }
}
