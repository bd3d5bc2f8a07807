//! Byte sizes as users write them: `4194304`, `"4MiB"`, `"4M"`, `"512k"`, `"10GiB"`.
//! Suffixes are binary (rclone's convention: `M` means MiB).

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        if digits.is_empty() {
            return Err(format!(
                "`{text}` is not a size (examples: 4194304, \"4MiB\", \"512k\")"
            ));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => 1024 * GIB,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}` (use k, M, G, T)"
                ))
            }
        };
        value
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
            if b >= size && b.is_multiple_of(size) {
                return write!(f, "{}{unit}", b / size);
            }
        }
        write!(f, "{b}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Number(n)) => Ok(ByteSize(n)),
            Ok(Raw::Text(t)) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom(
                "expected a size: a number of bytes or a string such as \"4MiB\"",
            )),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes, or a string with a binary unit: \"512k\", \"4MiB\", \"10G\".",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*([kKmMgGtT]([iI]?[bB])?|[bB])?\\s*$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(ByteSize::parse("4MiB").unwrap().bytes(), 4 * MIB);
        assert_eq!(ByteSize::parse("4M").unwrap().bytes(), 4 * MIB);
        assert_eq!(ByteSize::parse("512k").unwrap().bytes(), 512 * KIB);
        assert_eq!(ByteSize::parse("10 GiB").unwrap().bytes(), 10 * GIB);
        assert_eq!(ByteSize::parse("123").unwrap().bytes(), 123);
    }

    #[test]
    fn rejects_garbage() {
        assert!(ByteSize::parse("MiB").unwrap_err().contains("not a size"));
        assert!(ByteSize::parse("4 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(ByteSize::parse("99999999999999999999").is_err());
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let a: ByteSize = serde_json::from_str("1048576").unwrap();
        let b: ByteSize = serde_json::from_str("\"1MiB\"").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<ByteSize>("true").is_err());
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(4 * MIB).to_string(), "4MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }
}
