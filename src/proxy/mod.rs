//! The `/proxy/{group}/{path}` handler: authenticate the client, lease a key, forward the request,
//! retry a failed attempt with another key, and stream the upstream's answer back unbuffered.

pub mod upstream;

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use awc::error::SendRequestError;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use gpt_load_actors::domain::mask_secret;
use gpt_load_actors::group_registry::GroupView;
use gpt_load_actors::key_pool::{KeyOutcome, LeaseKey, ReportOutcome};

use crate::channel::{self, BodyProbe, InboundRequest};
use crate::http::credentials;
use crate::http::error::ApiError;
use crate::state::AppState;
use upstream::UpstreamClients;

/// Error bodies larger than this are cut when read for retry decisions.
const ERROR_BODY_LIMIT: usize = 1 << 20;
/// How long reading a failed attempt's error body may take.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Client headers that must not reach the upstream: credentials (replaced by the upstream key),
/// and connection-level headers that belong to the client's own hop.
const STRIPPED_REQUEST_HEADERS: [&str; 12] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "te",
    "upgrade",
];

/// Upstream response headers that describe the upstream hop, not the content.
const STRIPPED_RESPONSE_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// Handles one proxied request.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    clients: web::Data<UpstreamClients>,
) -> Result<HttpResponse, ApiError> {
    let credential =
        credentials::extract(req.headers(), req.query_string()).ok_or(ApiError::Unauthorized)?;
    let group_name = req.match_info().get("group").unwrap_or_default();
    let snapshot = state.snapshot.load();
    let group = snapshot
        .groups
        .get(group_name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("Group '{group_name}' not found")))?;
    if !(credentials::matches_any(&credential, &group.proxy_keys)
        || credentials::matches_any(&credential, &snapshot.global_proxy_keys))
    {
        return Err(ApiError::Unauthorized);
    }
    drop(snapshot);
    if group.record.is_aggregate() {
        return Err(ApiError::NoKeysAvailable("No available sub-groups".into()));
    }
    let channel = channel::for_type(&group.record.channel_type).ok_or_else(|| {
        ApiError::Internal(format!(
            "Failed to get channel for group '{}'",
            group.record.name
        ))
    })?;

    let body = read_body(&req, payload, state.config.max_request_body_bytes).await?;
    let probe = BodyProbe::parse(&body);
    let tail = upstream_path(req.uri().path(), group_name);
    let query = credentials::query_without_key(req.query_string());
    let inbound = InboundRequest {
        path: tail,
        query: &query,
        headers: req.headers(),
        body: &probe,
    };
    let is_stream = channel.is_stream(&inbound);
    let headers = forwarded_headers(req.headers());

    let config = &group.config;
    let client = clients.get(config);
    let head_timeout = if is_stream {
        config.response_header_timeout_secs
    } else {
        config
            .response_header_timeout_secs
            .min(config.request_timeout_secs)
    };
    let head_timeout = Duration::from_secs(head_timeout.max(1) as u64);

    let mut tried = Vec::new();
    let mut last_failure: Option<Failure> = None;
    for _attempt in 0..=config.max_retries.max(0) {
        let lease = state
            .pool
            .send(LeaseKey {
                group_id: group.record.id,
                exclude: tried.clone(),
            })
            .await
            .map_err(|e| ApiError::Internal(format!("key pool unavailable: {e}")))?;
        let Some(lease) = lease else {
            break;
        };
        tried.push(lease.key_id);
        let base = group.upstreams.pick().ok_or_else(|| {
            ApiError::Internal(
                "Failed to build upstream URL: no upstream has a positive weight".into(),
            )
        })?;

        let mut out_headers = headers.clone();
        let mut out_query = query.clone();
        channel.inject_key(&mut out_headers, &mut out_query, lease.secret.expose());
        let url = if out_query.is_empty() {
            format!("{base}{tail}")
        } else {
            format!("{base}{tail}?{out_query}")
        };

        let mut request = client
            .request(req.method().clone(), url.as_str())
            .no_decompress()
            .timeout(head_timeout);
        *request.headers_mut() = out_headers;
        let sent = request.send_body(body.clone()).await;

        let failure = match sent {
            Ok(response)
                if !config
                    .failover_status_codes
                    .contains(response.status().as_u16()) =>
            {
                report(&state, &group, lease.key_id, KeyOutcome::Success);
                return Ok(relay(response, is_stream));
            }
            Ok(mut response) => {
                let status = response.status();
                let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
                let encoded = response.headers().contains_key(header::CONTENT_ENCODING);
                let body = match tokio::time::timeout(
                    ERROR_BODY_TIMEOUT,
                    response.body().limit(ERROR_BODY_LIMIT),
                )
                .await
                {
                    Ok(Ok(bytes)) => bytes,
                    _ => Bytes::new(),
                };
                Failure::Status {
                    status,
                    content_type,
                    encoded,
                    body,
                }
            }
            Err(err) => Failure::Transport(transport_failure(&err)),
        };
        let secret = lease.secret.expose();
        tracing::warn!(
            group = %group.record.name,
            key = %lease.secret,
            status = failure.status().as_u16(),
            error = %redact(&failure.message(), secret),
            "Upstream attempt failed."
        );
        report(&state, &group, lease.key_id, KeyOutcome::Failure);
        last_failure = Some(failure.redacted(secret));
    }
    match last_failure {
        Some(failure) => Ok(failure.into_response()),
        None => Err(ApiError::NoKeysAvailable(
            "No active API keys available for this group".into(),
        )),
    }
}

fn report(state: &AppState, group: &GroupView, key_id: i64, outcome: KeyOutcome) {
    state.pool.do_send(ReportOutcome {
        group_id: group.record.id,
        key_id,
        outcome,
        blacklist_threshold: group.config.blacklist_threshold,
    });
}

/// Reads the whole request body (it is resent on retries), refusing bodies over `limit`.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("Failed to read request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The inbound path with `/proxy/{group}` removed, as sent (still percent-encoded).
fn upstream_path<'a>(path: &'a str, group: &str) -> &'a str {
    path.strip_prefix("/proxy/")
        .and_then(|rest| rest.strip_prefix(group))
        .unwrap_or("")
}

fn forwarded_headers(inbound: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(inbound.len());
    for (name, value) in inbound.iter() {
        if !STRIPPED_REQUEST_HEADERS.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Streams an upstream response to the client as it arrives: status and headers first, then
/// every body chunk the moment it is read, with no buffering.
fn relay(response: awc::ClientResponse, is_stream: bool) -> HttpResponse {
    let mut builder = HttpResponse::build(response.status());
    for (name, value) in response.headers().iter() {
        if !STRIPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let event_stream = response
        .headers()
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
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(len) => builder.body(SizedStream::new(len, response)),
        None => builder.streaming(response),
    }
}

/// Why an attempt failed.
enum Failure {
    /// The upstream answered with a failover status.
    Status {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        encoded: bool,
        body: Bytes,
    },
    /// No usable answer: connect error, timeout, broken connection.
    Transport(TransportFailure),
}

struct TransportFailure {
    status: StatusCode,
    message: String,
}

fn transport_failure(err: &SendRequestError) -> TransportFailure {
    match err {
        SendRequestError::Timeout => TransportFailure {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "Upstream did not answer in time".into(),
        },
        SendRequestError::Connect(e) => TransportFailure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Could not connect to upstream: {e}"),
        },
        other => TransportFailure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream request failed: {other}"),
        },
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Status { status, .. } => *status,
            Failure::Transport(t) => t.status,
        }
    }

    /// The upstream's error message (GPT-Load's order: `error.message`, `error_msg`, `error`,
    /// `message`, else the raw text), for logs.
    fn message(&self) -> String {
        match self {
            Failure::Transport(t) => t.message.clone(),
            Failure::Status {
                encoded: true,
                status,
                ..
            } => format!("upstream answered {status} (compressed body)"),
            Failure::Status { body, .. } => parse_error_message(body),
        }
    }

    /// The same failure with every occurrence of the upstream key masked.
    fn redacted(self, secret: &str) -> Self {
        match self {
            Failure::Status {
                status,
                content_type,
                encoded,
                body,
            } => {
                let body = if !encoded && contains(&body, secret.as_bytes()) {
                    Bytes::from(redact(&String::from_utf8_lossy(&body), secret))
                } else {
                    body
                };
                Failure::Status {
                    status,
                    content_type,
                    encoded,
                    body,
                }
            }
            Failure::Transport(t) => Failure::Transport(TransportFailure {
                status: t.status,
                message: redact(&t.message, secret),
            }),
        }
    }

    /// The answer a client gets when no attempt is left: the upstream's own status and body when
    /// it sent one, else GPT-Load's `UPSTREAM_ERROR` envelope.
    fn into_response(self) -> HttpResponse {
        match self {
            Failure::Status {
                status,
                content_type,
                encoded: false,
                body,
            } if is_json(&body) => {
                let mut builder = HttpResponse::build(status);
                builder.insert_header((
                    header::CONTENT_TYPE,
                    content_type.unwrap_or(HeaderValue::from_static("application/json")),
                ));
                builder.body(body)
            }
            failure => {
                let status = failure.status();
                let message = match &failure {
                    Failure::Status {
                        body,
                        encoded: false,
                        ..
                    } if !body.is_empty() => {
                        String::from_utf8_lossy(body).chars().take(2048).collect()
                    }
                    other => other.message(),
                };
                ApiError::Upstream { status, message }.into_http()
            }
        }
    }
}

impl ApiError {
    fn into_http(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Masks every occurrence of `secret` in `text`.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text.to_string();
    }
    text.replace(secret, &mask_secret(secret))
}

pub(crate) fn parse_error_message(body: &[u8]) -> String {
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
    fn path_after_group_is_kept_verbatim() {
        assert_eq!(
            upstream_path("/proxy/oa/v1/chat/completions", "oa"),
            "/v1/chat/completions"
        );
        assert_eq!(upstream_path("/proxy/oa", "oa"), "");
        assert_eq!(upstream_path("/proxy/oa/v1/a%20b", "oa"), "/v1/a%20b");
    }

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
    fn keys_are_redacted_from_messages() {
        assert_eq!(
            redact("bad key sk-abcdefghijkl here", "sk-abcdefghijkl"),
            "bad key sk-a****ijkl here"
        );
        let f = Failure::Status {
            status: StatusCode::UNAUTHORIZED,
            content_type: None,
            encoded: false,
            body: Bytes::from_static(br#"{"error":{"message":"key sk-abcdefghijkl is invalid"}}"#),
        }
        .redacted("sk-abcdefghijkl");
        assert!(!f.message().contains("sk-abcdefghijkl"));
    }

    #[test]
    fn credentials_and_hop_headers_are_not_forwarded() {
        let mut inbound = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer p"),
            ("x-api-key", "p"),
            ("host", "h"),
            ("content-type", "application/json"),
            ("x-custom", "1"),
        ] {
            inbound.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = forwarded_headers(&inbound);
        assert!(
            out.get("authorization").is_none()
                && out.get("x-api-key").is_none()
                && out.get("host").is_none()
        );
        assert_eq!(out.get("x-custom").unwrap(), "1");
        assert_eq!(out.get("content-type").unwrap(), "application/json");
    }
}
