//! Middleware applied to every request: the access log, the concurrency limit and security
//! headers. CORS comes from actix-cors (see `app.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::Bytes;
use actix_web::{Error, ResponseError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::credentials::redacted_query;
use super::error::ApiError;

/// One line per request: method, path with the query (credential-like values redacted, the
/// whole cut at [`LOGGED_URL_LIMIT`]), status, latency.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let health = req.path() == "/health";
    let target = logged_target(req.path(), req.query_string());
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    if health && status < 400 {
        return Ok(res);
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match status {
        500.. => tracing::error!(%method, path = %target, status, latency_ms, "Request served."),
        400..=499 => tracing::warn!(%method, path = %target, status, latency_ms, "Request served."),
        _ => tracing::info!(%method, path = %target, status, latency_ms, "Request served."),
    }
    Ok(res)
}

/// Longest URL an access-log line carries, in bytes: a client can send URLs of many kilobytes,
/// and each would be copied into every log line and log store.
pub const LOGGED_URL_LIMIT: usize = 2048;

/// The path and query as the access log writes them: credential-like query values redacted
/// (on every route, not just the proxy), then cut at [`LOGGED_URL_LIMIT`] with a marker.
pub fn logged_target(path: &str, query: &str) -> String {
    let mut target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", redacted_query(query))
    };
    if target.len() > LOGGED_URL_LIMIT {
        let full = target.len();
        let mut cut = LOGGED_URL_LIMIT;
        while !target.is_char_boundary(cut) {
            cut -= 1;
        }
        target.truncate(cut);
        target.push_str(&format!("…[truncated, {full} bytes]"));
    }
    target
}

/// Caps concurrent requests at `MAX_CONCURRENT_REQUESTS`. A request over the cap is refused at
/// once with 503 and `Retry-After` rather than queued; a streamed response holds its slot until
/// its last byte is sent.
pub async fn concurrency_limit(
    limit: Arc<Semaphore>,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Health probes must answer even when the node is saturated, or an orchestrator would
    // restart a busy but healthy node.
    if req.path() == "/health" {
        return next.call(req).await;
    }
    let Ok(permit) = limit.try_acquire_owned() else {
        let res = ApiError::Overloaded.error_response();
        return Ok(req.into_response(res));
    };
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| {
        BoxBody::new(PermitBody {
            inner: body,
            _permit: permit,
        })
    }))
}

/// A response body that releases its concurrency slot when dropped.
struct PermitBody {
    inner: BoxBody,
    _permit: OwnedSemaphorePermit,
}

impl MessageBody for PermitBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}

/// The security headers GPT-Load sets on every response.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ))
        .add(("X-Frame-Options", "SAMEORIGIN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_are_redacted_and_capped() {
        assert_eq!(logged_target("/health", ""), "/health");
        assert_eq!(
            logged_target("/api/logs", "key_value=sk-live&page=1"),
            "/api/logs?key_value=[redacted]&page=1"
        );
        let long = format!("q={}", "é".repeat(3000));
        let logged = logged_target("/proxy/g/v1/models", &long);
        assert!(logged.ends_with("…[truncated, 6021 bytes]"), "{logged}");
        assert!(logged.len() <= LOGGED_URL_LIMIT + 40);
    }
}
