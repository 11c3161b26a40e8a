//! What goes back to the client: the upstream's response streamed through, or, when every attempt
//! failed, the last failure — with upstream keys masked wherever they appear.

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use awc::error::SendRequestError;
use bytes::Bytes;
use gpt_load_actors::domain::mask_secret;

use super::classify::classify_status;
use super::decode::decode;
use crate::http::error::ApiError;
use gpt_load_actors::key_state::FailureClass;

/// Upstream response headers that describe the upstream hop, not the content.
const STRIPPED_RESPONSE_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// Streams an upstream response to the client as it arrives: status and headers first, then
/// every body chunk the moment it is read, with no buffering.
pub fn relay<S, E>(
    status: StatusCode,
    headers: &HeaderMap,
    body: S,
    is_stream: bool,
) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if !STRIPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let event_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream && event_stream {
        builder.insert_header((header::CACHE_CONTROL, "no-cache"));
        builder.insert_header((
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(len) => builder.body(SizedStream::new(len, body)),
        None => builder.streaming(body),
    }
}

/// Why an attempt failed.
pub enum Failure {
    /// The upstream answered with a failover status.
    Status {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        encoding: Option<String>,
        retry_after: Option<std::time::Duration>,
        body: Bytes,
    },
    /// No usable answer: connect error, timeout, broken connection.
    Transport { status: StatusCode, message: String },
}

/// Classifies a request that got no response.
pub fn transport_failure(err: &SendRequestError) -> Failure {
    match err {
        SendRequestError::Timeout => Failure::Transport {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "Upstream did not answer in time".into(),
        },
        SendRequestError::Connect(e) => Failure::Transport {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Could not connect to upstream: {e}"),
        },
        other => Failure::Transport {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream request failed: {other}"),
        },
    }
}

impl Failure {
    /// The status the attempt ended with.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Status { status, .. } | Failure::Transport { status, .. } => *status,
        }
    }

    fn decoded_body(&self) -> Option<Vec<u8>> {
        match self {
            Failure::Status { body, encoding, .. } => decode(body, encoding.as_deref()),
            Failure::Transport { .. } => None,
        }
    }

    /// The failure's class, which decides what happens to the key.
    pub fn class(&self) -> FailureClass {
        match self {
            Failure::Transport { .. } => FailureClass::UpstreamTrouble,
            Failure::Status {
                status,
                retry_after,
                ..
            } => classify_status(
                status.as_u16(),
                *retry_after,
                self.decoded_body().as_deref(),
            ),
        }
    }

    /// The upstream's error message, for logs.
    pub fn message(&self) -> String {
        match self {
            Failure::Transport { message, .. } => message.clone(),
            Failure::Status { status, .. } => match self.decoded_body() {
                Some(body) if !body.is_empty() => parse_error_message(&body),
                Some(_) => format!("upstream answered {status} with an empty body"),
                None => format!("upstream answered {status} with an undecodable body"),
            },
        }
    }

    /// The same failure with every occurrence of the upstream key masked.
    pub fn redacted(self, secret: &str) -> Self {
        match self {
            Failure::Status {
                status,
                content_type,
                encoding,
                retry_after,
                body,
            } => {
                let plain = encoding
                    .as_deref()
                    .is_none_or(|e| e.eq_ignore_ascii_case("identity"));
                if plain && contains(&body, secret.as_bytes()) {
                    let body = Bytes::from(redact(&String::from_utf8_lossy(&body), secret));
                    Failure::Status {
                        status,
                        content_type,
                        encoding,
                        retry_after,
                        body,
                    }
                } else if !plain
                    && decode(&body, encoding.as_deref())
                        .is_some_and(|d| contains(&d, secret.as_bytes()))
                {
                    // Re-encoding is not worth it for an error body: send it decoded and masked.
                    let decoded = decode(&body, encoding.as_deref()).unwrap_or_default();
                    let body = Bytes::from(redact(&String::from_utf8_lossy(&decoded), secret));
                    Failure::Status {
                        status,
                        content_type,
                        encoding: None,
                        retry_after,
                        body,
                    }
                } else {
                    Failure::Status {
                        status,
                        content_type,
                        encoding,
                        retry_after,
                        body,
                    }
                }
            }
            Failure::Transport { status, message } => Failure::Transport {
                status,
                message: redact(&message, secret),
            },
        }
    }

    /// The answer a client gets when no attempt is left: the upstream's own status and body when
    /// it sent a JSON one, else GPT-Load's `UPSTREAM_ERROR` envelope.
    pub fn into_response(self) -> HttpResponse {
        let status = self.status();
        if let Failure::Status {
            content_type,
            encoding,
            body,
            ..
        } = &self
        {
            if self.decoded_body().is_some_and(|d| is_json(&d)) {
                let mut builder = HttpResponse::build(status);
                builder.insert_header((
                    header::CONTENT_TYPE,
                    content_type
                        .clone()
                        .unwrap_or(HeaderValue::from_static("application/json")),
                ));
                if let Some(encoding) = encoding
                    .as_deref()
                    .and_then(|e| HeaderValue::from_str(e).ok())
                {
                    builder.insert_header((header::CONTENT_ENCODING, encoding));
                }
                return builder.body(body.clone());
            }
        }
        let message = match self.decoded_body() {
            Some(body) if !body.is_empty() => {
                String::from_utf8_lossy(&body).chars().take(2048).collect()
            }
            _ => self.message(),
        };
        actix_web::ResponseError::error_response(&ApiError::Upstream { status, message })
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Masks every occurrence of `secret` in `text`.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text.to_string();
    }
    text.replace(secret, &mask_secret(secret))
}

/// GPT-Load's order: `error.message`, `error_msg`, `error` (string), `message`, else the raw text;
/// at most 2048 characters.
pub fn parse_error_message(body: &[u8]) -> String {
    let text = || {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(2048)
            .collect::<String>()
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return text();
    };
    let candidates = [
        value.pointer("/error/message"),
        value.get("error_msg"),
        value.get("error"),
        value.get("message"),
    ];
    let found: Option<String> = candidates
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(|s| s.chars().take(2048).collect());
    found.unwrap_or_else(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_follow_gpt_load_order() {
        assert_eq!(
            parse_error_message(br#"{"error":{"message":" bad key "}}"#),
            "bad key"
        );
        assert_eq!(
            parse_error_message(br#"{"error_msg":"m1","message":"m2"}"#),
            "m1"
        );
        assert_eq!(parse_error_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(parse_error_message(br#"{"message":"top"}"#), "top");
        assert_eq!(parse_error_message(b"oops"), "oops");
    }

    #[test]
    fn keys_are_redacted_from_messages_and_bodies() {
        assert_eq!(
            redact("bad key sk-abcdefghijkl here", "sk-abcdefghijkl"),
            "bad key sk-a****ijkl here"
        );
        let f = Failure::Status {
            status: StatusCode::UNAUTHORIZED,
            content_type: None,
            encoding: None,
            retry_after: None,
            body: Bytes::from_static(br#"{"error":{"message":"key sk-abcdefghijkl is invalid"}}"#),
        }
        .redacted("sk-abcdefghijkl");
        assert!(!f.message().contains("sk-abcdefghijkl"));
        assert!(f.message().contains("sk-a****ijkl"));
    }
}
