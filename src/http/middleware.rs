//! Middleware applied to every request: the access log, the body deadline and security
//! headers. CORS comes from actix-cors (see `app.rs`); the concurrency limit is taken after
//! authentication (see `admission.rs`).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::Bytes;
use actix_web::{Error, ResponseError};
use futures_util::Stream;

use super::admission::{GuardedBody, InFlight};
use super::credentials::redacted_query;
use super::error::EdgeError;

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

/// Counts every request but `/health` as in flight until its response is sent, for the graceful
/// stop.
pub async fn track_in_flight(
    in_flight: InFlight,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.path() == "/health" {
        return next.call(req).await;
    }
    let guard = in_flight.enter();
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| BoxBody::new(GuardedBody::new(body, guard))))
}

/// Bounds the time a request body may take to arrive: `limit` (`SERVER_READ_TIMEOUT`) from the
/// request head on. A body still incomplete then ends in an error for whoever reads it, and the
/// request is answered 408 with the connection closed, whatever the handler made of the error.
/// A client that trickles a body cannot hold a connection, a slot or memory for longer.
pub async fn body_deadline(
    limit: Duration,
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !has_body(&req) {
        return next.call(req).await;
    }
    let expired = Rc::new(Cell::new(false));
    let (_, payload) = req.parts_mut();
    let inner = std::mem::replace(payload, Payload::None);
    let bounded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(DeadlinePayload {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            expired: Rc::clone(&expired),
        });
    req.set_payload(Payload::Stream { payload: bounded });
    let res = next.call(req).await;
    if !expired.get() {
        return res;
    }
    match res {
        Ok(res) => Ok(res.into_response(EdgeError::RequestTimeout.error_response())),
        Err(_) => Err(EdgeError::RequestTimeout.into()),
    }
}

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// A request body that fails once its deadline passes.
struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired.get() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => {}
            ready => return ready,
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body not received in time",
            )))));
        }
        Poll::Pending
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
