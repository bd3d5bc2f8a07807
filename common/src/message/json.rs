//! Reading a message's bytes into JSON, strictly: UTF-8 only, bounded in size, and no object
//! may repeat a key (serde_json keeps the last one silently, so `{"kind": "backup", "kind":
//! "test_connection"}` would mean whatever the last writer wanted).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The largest message accepted: Azure Queue's limit (64 KiB), which also fits SQS (256 KiB
/// and more). The worker's own part messages stay under 32 KiB (bigger file lists go into a
/// manifest beside the data).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The message's bytes as text: anything but plain UTF-8 is refused, naming what it is.
pub fn decode(bytes: &[u8]) -> Result<&str> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::MalformedMessage(format!(
            "the message is {} bytes; at most {MAX_MESSAGE_BYTES} bytes (64 KiB, Azure Queue's limit) are accepted",
            bytes.len()
        )));
    }
    let encoding = match bytes {
        [0xEF, 0xBB, 0xBF, ..] => Some("UTF-8 with a byte order mark"),
        [0xFF, 0xFE, ..] => Some("UTF-16 little-endian (it starts with a byte order mark)"),
        [0xFE, 0xFF, ..] => Some("UTF-16 big-endian (it starts with a byte order mark)"),
        [0, _, ..] | [_, 0, ..] => Some("UTF-16 or UTF-32 (it holds NUL bytes)"),
        _ => None,
    };
    if let Some(encoding) = encoding {
        return Err(Error::MalformedMessage(format!(
            "the message is encoded as {encoding}: send it as UTF-8 without a byte order mark"
        )));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Error::MalformedMessage(format!(
            "the message is not valid UTF-8 (invalid byte at offset {}): send it as UTF-8",
            e.valid_up_to()
        ))
    })
}

/// Parse JSON text, refusing a repeated key in any object; the error names where.
pub fn parse(text: &str) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = inner.to_string();
        match text.strip_prefix(DUPLICATE) {
            Some(rest) => {
                let key = rest.split('`').next().unwrap_or_default();
                let field = if path == "." || path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                Error::invalid_field(field, "appears more than once: each key may be given once")
            }
            None => Error::MalformedMessage(text),
        }
    })?;
    de.end()
        .map_err(|e| Error::MalformedMessage(e.to_string()))?;
    Ok(StrictValue::into(value))
}

const DUPLICATE: &str = "duplicate key `";

/// A JSON value read with the duplicate-key rule.
struct StrictValue(Value);

impl StrictValue {
    fn into(self) -> Value {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE}{key}`")));
            }
            let StrictValue(value) = map.next_value_seed(StrictSeed)?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = StrictValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<StrictValue, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_named_with_its_path() {
        let e = parse(r#"{"kind": "backup", "kind": "test_connection"}"#).unwrap_err();
        assert_eq!(e.code(), "message.invalid_field");
        assert!(
            e.to_string().contains("`kind` appears more than once"),
            "{e}"
        );
        let e = parse(r#"{"source": {"path": "/a", "path": "/b"}}"#).unwrap_err();
        assert!(e.to_string().contains("`source.path` appears"), "{e}");
        let e = parse(r#"{"include": [{"a": 1, "a": 2}]}"#).unwrap_err();
        assert!(e.to_string().contains("`include[0].a` appears"), "{e}");
    }

    #[test]
    fn values_come_through_unchanged() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true], "b": {"c": "d"}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn encodings_other_than_utf8_are_named() {
        let utf16: Vec<u8> = "\u{feff}{}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(decode(&utf16).unwrap_err().to_string().contains("UTF-16"));
        assert!(decode(b"\xEF\xBB\xBF{}")
            .unwrap_err()
            .to_string()
            .contains("byte order mark"));
        let e = decode(b"{\"a\": \"\xff\"}").unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
        assert!(e.to_string().contains("offset 7"), "{e}");
        assert!(decode(&vec![b' '; MAX_MESSAGE_BYTES + 1])
            .unwrap_err()
            .to_string()
            .contains("64 KiB"));
        assert_eq!(decode(b"{}").unwrap(), "{}");
    }
}
