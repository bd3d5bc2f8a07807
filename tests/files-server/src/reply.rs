//! Responses as the File service shapes them: XML error bodies with `x-ms-error-code`, the
//! standard headers, and the two timestamp formats.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};

use crate::store::Nanos;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    pub fn with_detail(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((element, value.into()));
        self
    }

    pub fn internal(message: &str) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    pub fn not_implemented(what: &str) -> Self {
        ApiError::new(
            501,
            "NotImplemented",
            format!("The test server does not implement {what}."),
        )
    }

    pub fn into_response(self, head_only: bool) -> Response<Body> {
        let body = if head_only {
            String::new()
        } else {
            let extra: String = self
                .extra
                .iter()
                .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
                .collect();
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{}\nTime:{}</Message>{extra}</Error>",
                self.code,
                escape(&self.message),
                crate::store::next_id(),
                iso(crate::store::now()),
            )
        };
        let mut r = Response::new(Body::from(body));
        *r.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert("x-ms-error-code", HeaderValue::from_static(self.code));
        h.insert("content-type", HeaderValue::from_static("application/xml"));
        r
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `x-ms-file-*-time` format: ISO 8601 with exactly seven fractional digits.
pub fn iso(nanos: Nanos) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

pub fn parse_iso(text: &str) -> Option<Nanos> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_digit_times() {
        let n: Nanos = 1_700_000_000_123_456_789;
        assert_eq!(iso(n), "2023-11-14T22:13:20.1234567Z");
        assert_eq!(
            parse_iso("2023-11-14T22:13:20.1234567Z"),
            Some(1_700_000_000_123_456_700)
        );
    }
}
