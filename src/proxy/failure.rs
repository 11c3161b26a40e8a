//! Why an attempt failed, as a type: where the failure came from (the upstream's answer, the
//! transport, or this side: the client left or the server stopped), whether another key may be
//! tried and whether the key is charged. The last failure becomes the client's answer, with
//! upstream keys masked wherever they appear.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use awc::error::SendRequestError;
use bytes::Bytes;
use gpt_load_actors::domain::mask_secret;
use gpt_load_actors::key_state::FailureClass;

use super::cancel::Interrupt;
use super::classify::classify_status;
use super::decode::decode;
use crate::proxy::error::ProxyError;

/// Status recorded when the client went away before the answer was complete (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

/// Why an attempt failed.
pub enum Failure {
    /// The upstream answered with one of the group's failover statuses.
    Upstream {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        encoding: Option<String>,
        retry_after: Option<std::time::Duration>,
        body: Bytes,
    },
    /// No usable answer: connect error, timeout, broken connection.
    Transport { status: StatusCode, message: String },
    /// This side ended the attempt: the client left or the server's stop deadline passed.
    Local(Interrupt),
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

/// The status and message recorded for a request an interruption ended.
pub fn interrupted(interrupt: Interrupt, during_response: bool) -> (u16, &'static str) {
    match (interrupt, during_response) {
        (Interrupt::ClientGone, false) => {
            (CLIENT_CLOSED, "client disconnected before the response")
        }
        (Interrupt::ClientGone, true) => (CLIENT_CLOSED, "client disconnected during the response"),
        (Interrupt::ServerCut, false) => (
            503,
            "server stopped before the response (graceful shutdown deadline reached)",
        ),
        (Interrupt::ServerCut, true) => (
            503,
            "server stopped during the response (graceful shutdown deadline reached)",
        ),
    }
}

impl Failure {
    /// The status the attempt ended with.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Upstream { status, .. } | Failure::Transport { status, .. } => *status,
            Failure::Local(interrupt) => {
                StatusCode::from_u16(interrupted(*interrupt, false).0).unwrap_or(StatusCode::GONE)
            }
        }
    }

    /// Whether another key may be tried: only when the upstream side failed. A client that left
    /// or a server that stops wants no further attempt.
    pub fn retryable(&self) -> bool {
        !matches!(self, Failure::Local(_))
    }

    /// The class reported to the key pool; `None` when the key is not to blame at all.
    pub fn key_class(&self) -> Option<FailureClass> {
        match self {
            Failure::Transport { .. } => Some(FailureClass::UpstreamTrouble),
            Failure::Upstream {
                status,
                retry_after,
                ..
            } => Some(classify_status(
                status.as_u16(),
                *retry_after,
                self.decoded_body().as_deref(),
            )),
            Failure::Local(_) => None,
        }
    }

    /// The class's name, for logs.
    pub fn class_name(&self) -> &'static str {
        match (self, self.key_class()) {
            (_, Some(class)) => class.as_str(),
            (Failure::Local(Interrupt::ServerCut), None) => "server_cut",
            // A departed client is no key's failure class: it never reaches the pool.
            _ => "client_gone",
        }
    }

    fn decoded_body(&self) -> Option<Vec<u8>> {
        match self {
            Failure::Upstream { body, encoding, .. } => decode(body, encoding.as_deref()),
            Failure::Transport { .. } | Failure::Local(_) => None,
        }
    }

    /// The upstream's error message, for logs.
    pub fn message(&self) -> String {
        match self {
            Failure::Transport { message, .. } => message.clone(),
            Failure::Local(interrupt) => interrupted(*interrupt, false).1.to_string(),
            Failure::Upstream { status, .. } => match self.decoded_body() {
                Some(body) if !body.is_empty() => parse_error_message(&body),
                Some(_) => format!("upstream answered {status} with an empty body"),
                None => format!("upstream answered {status} with an undecodable body"),
            },
        }
    }

    /// The same failure with every occurrence of the upstream key masked.
    pub fn redacted(self, secret: &str) -> Self {
        match self {
            Failure::Upstream {
                status,
                content_type,
                encoding,
                retry_after,
                body,
            } => {
                let (body, encoding) = redact_body(body, encoding, secret);
                Failure::Upstream {
                    status,
                    content_type,
                    encoding,
                    retry_after,
                    body,
                }
            }
            Failure::Transport { status, message } => Failure::Transport {
                status,
                message: redact(&message, secret),
            },
            local @ Failure::Local(_) => local,
        }
    }

    /// The answer a client gets when no attempt is left: the upstream's own status and body when
    /// it sent a JSON one, else GPT-Load's `UPSTREAM_ERROR` envelope.
    pub fn into_response(self) -> HttpResponse {
        let status = self.status();
        match &self {
            Failure::Local(Interrupt::ServerCut) => {
                return actix_web::ResponseError::error_response(&ProxyError::Stopping)
            }
            // Nobody reads it: the client is gone.
            Failure::Local(Interrupt::ClientGone) => return HttpResponse::build(status).finish(),
            Failure::Upstream {
                content_type,
                encoding,
                body,
                ..
            } if self.decoded_body().is_some_and(|d| is_json(&d)) => {
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
            _ => {}
        }
        let message = match self.decoded_body() {
            Some(body) if !body.is_empty() => {
                String::from_utf8_lossy(&body).chars().take(2048).collect()
            }
            _ => self.message(),
        };
        actix_web::ResponseError::error_response(&ProxyError::Upstream { status, message })
    }
}

/// An error body with `secret` masked; a compressed one that holds the key is sent decoded
/// (re-encoding is not worth it for an error body).
fn redact_body(body: Bytes, encoding: Option<String>, secret: &str) -> (Bytes, Option<String>) {
    let plain = encoding
        .as_deref()
        .is_none_or(|e| e.eq_ignore_ascii_case("identity"));
    if plain {
        if contains(&body, secret.as_bytes()) {
            return (
                Bytes::from(redact(&String::from_utf8_lossy(&body), secret)),
                encoding,
            );
        }
        return (body, encoding);
    }
    match decode(&body, encoding.as_deref()) {
        Some(decoded) if contains(&decoded, secret.as_bytes()) => (
            Bytes::from(redact(&String::from_utf8_lossy(&decoded), secret)),
            None,
        ),
        _ => (body, encoding),
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
        let f = Failure::Upstream {
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

    #[test]
    fn local_failures_are_final_and_charge_no_key() {
        let gone = Failure::Local(Interrupt::ClientGone);
        assert!(!gone.retryable());
        assert_eq!(gone.key_class(), None);
        assert_eq!(gone.status().as_u16(), 499);
        assert_eq!(gone.class_name(), "client_gone");
        let cut = Failure::Local(Interrupt::ServerCut);
        assert_eq!(cut.status().as_u16(), 503);
        assert_eq!(cut.class_name(), "server_cut");
        let transport = Failure::Transport {
            status: StatusCode::BAD_GATEWAY,
            message: String::new(),
        };
        assert!(transport.retryable());
        assert_eq!(transport.key_class(), Some(FailureClass::UpstreamTrouble));
    }
}
