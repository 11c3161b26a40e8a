//! Relay and record phases: what goes back to the client (the upstream's response streamed
//! through unbuffered, a model list rewritten, or the last failure) and what is recorded about it
//! (the final log row, written when the body ends, and the request metrics).

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use bytes::Bytes;
use futures_util::StreamExt;
use gpt_load_actors::group_registry::GroupView;

use super::attempt::Attempted;
use super::context::RequestContext;
use super::decode;
use super::rewrite;
use super::state::ProxyState;
use crate::proxy::error::ProxyError;
use crate::usage::{UsageScanner, Wire};

/// Model lists are read whole to be rewritten.
const MODEL_LIST_LIMIT: usize = 8 << 20;

/// Turns the attempts' outcome into the client's answer, records it, and observes the metrics.
pub async fn respond(
    state: &ProxyState,
    ctx: RequestContext,
    outcome: Attempted,
) -> Result<HttpResponse, ProxyError> {
    let RequestContext {
        started,
        group,
        channel,
        forward,
        is_model_list,
        mut log,
        interrupts,
        upstream_time,
        ..
    } = ctx;
    let mut response = match outcome {
        Attempted::Success(mut response, attempt, first) => {
            let status = response.status();
            if is_model_list {
                let reply = rewrite_model_list(response, &group, &forward.query).await;
                match &reply {
                    Ok(_) => log.finished(&attempt, status.as_u16(), None),
                    Err(err) => {
                        log.finished(&attempt, err.status_code().as_u16(), Some(err.to_string()))
                    }
                }
                reply?
            } else {
                let rest = response.take_payload();
                let headers = response.headers();
                let scanner = UsageScanner::new(
                    Wire::detect(channel.name(), &forward.path),
                    headers
                        .get(header::CONTENT_ENCODING)
                        .and_then(|v| v.to_str().ok()),
                );
                let body = log
                    .finish(
                        attempt,
                        status.as_u16(),
                        futures_util::stream::iter(first.map(Ok)).chain(rest),
                        interrupts,
                    )
                    .scanning(scanner, std::sync::Arc::clone(&state.metrics));
                relay(status, headers, body, forward.is_stream)
            }
        }
        Attempted::Failed(failure, attempt) => {
            log.attempt_failed(
                &attempt,
                failure.status().as_u16(),
                &failure.message(),
                true,
            );
            failure.into_response()
        }
        Attempted::NoKeys => {
            let err =
                ProxyError::NoKeysAvailable("No active API keys available for this group".into());
            log.failed_without_attempt(503, &err.to_string());
            return Err(err);
        }
    };
    // What the proxy itself added: everything but the time spent waiting on upstreams.
    let overhead = started.elapsed().saturating_sub(upstream_time);
    state.metrics.observe(
        &group.record.name,
        channel.name(),
        response.status().as_u16(),
        upstream_time,
        overhead,
    );
    if state.config.overhead_header {
        if let Ok(value) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0))
        {
            response
                .headers_mut()
                .insert(HeaderName::from_static("x-gptload-overhead-ms"), value);
        }
    }
    Ok(response)
}

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

/// Replaces a model-list reply with one rewritten per the group's redirect rules.
async fn rewrite_model_list(
    mut response: awc::ClientResponse,
    group: &GroupView,
    query: &str,
) -> Result<HttpResponse, ProxyError> {
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let raw = response
        .body()
        .limit(MODEL_LIST_LIMIT)
        .await
        .map_err(|e| ProxyError::Upstream {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Failed to read response: {e}"),
        })?;
    let first_page = !url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "pageToken");
    let rewritten = decode::decode(&raw, encoding.as_deref())
        .and_then(|plain| {
            rewrite::rewrite_model_list(
                &plain,
                &group.redirects,
                group.record.model_redirect_strict,
                first_page,
            )
        })
        .ok_or_else(|| ProxyError::Upstream {
            status: StatusCode::BAD_GATEWAY,
            message: "Failed to process response".into(),
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(rewritten))
}
