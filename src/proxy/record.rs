//! Record phase: the request log rows of one proxied request, a row per failed attempt and one
//! final row written when the response has been streamed to its end, or when the client left or
//! the server's stop deadline cut it first (each recorded with its own status and message).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use gpt_load_actors::domain::{KeyId, KeySecret, RequestRecord, RequestType, TokenUsage};
use gpt_load_actors::log_batcher::RecordQueue;

use crate::metrics::Metrics;
use crate::usage::UsageScanner;

use super::cancel::{Interrupt, Interrupts, StopDeadline};
use super::failure::interrupted;

/// Request bodies are logged up to this many bytes.
pub const BODY_LOG_LIMIT: usize = 65_000;

/// Fields shared by every row of one request.
#[derive(Clone)]
pub struct LogContext {
    /// `None` when request logging is off (`ENABLE_REQUEST_LOGS=false`).
    pub records: Option<RecordQueue>,
    pub started: Instant,
    pub group_id: i64,
    pub group_name: String,
    pub parent_group_id: i64,
    pub parent_group_name: String,
    pub model: String,
    pub source_ip: String,
    pub request_path: String,
    pub is_stream: bool,
    pub user_agent: String,
    pub request_body: String,
    /// Tells a request dropped by the server's stop from one whose client left.
    pub stop: StopDeadline,
    /// Non-secret identity of the proxy key that authenticated the request.
    pub proxy_key: String,
}

/// The key and upstream of one attempt.
#[derive(Clone)]
pub struct AttemptInfo {
    pub key_id: KeyId,
    pub key: Arc<KeySecret>,
    pub upstream_addr: String,
}

/// A request body as logged: cut at [`BODY_LOG_LIMIT`] bytes (on a character boundary), with a
/// note saying so.
pub fn loggable_body(body: &[u8]) -> String {
    if body.len() <= BODY_LOG_LIMIT {
        return String::from_utf8_lossy(body).into_owned();
    }
    let mut cut = BODY_LOG_LIMIT;
    while cut > 0 && (body[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    format!(
        "{}\n[truncated: {} of {} bytes logged]",
        String::from_utf8_lossy(&body[..cut]),
        cut,
        body.len()
    )
}

impl LogContext {
    /// The final row of a request dropped before it finished: cut by the server when the stop
    /// deadline has passed, else its client left. `attempt` is the answered attempt when the
    /// response had begun.
    fn send_interrupted(&self, attempt: Option<&AttemptInfo>) {
        let cause = if self.stop.passed() {
            Interrupt::ServerCut
        } else {
            Interrupt::ClientGone
        };
        let (status, message) = interrupted(cause, attempt.is_some());
        self.send(
            attempt,
            RequestType::Final,
            i32::from(status),
            false,
            message.into(),
        );
    }

    /// A row without token usage (failed attempts, cut responses).
    fn send(
        &self,
        attempt: Option<&AttemptInfo>,
        request_type: RequestType,
        status: i32,
        success: bool,
        error: String,
    ) {
        self.send_with_usage(
            attempt,
            request_type,
            status,
            success,
            error,
            TokenUsage::default(),
        );
    }

    fn send_with_usage(
        &self,
        attempt: Option<&AttemptInfo>,
        request_type: RequestType,
        status: i32,
        success: bool,
        error: String,
        usage: TokenUsage,
    ) {
        let Some(records) = &self.records else {
            return;
        };
        records.push(RequestRecord {
            // v7: time-ordered, so the primary-key index grows at its end instead of being written at
            // random places (a v4 per row made every insert touch a random page).
            id: uuid::Uuid::now_v7().to_string(),
            timestamp: chrono::Utc::now().naive_utc(),
            group_id: self.group_id,
            group_name: self.group_name.clone(),
            parent_group_id: self.parent_group_id,
            parent_group_name: self.parent_group_name.clone(),
            key_id: attempt.map(|a| a.key_id),
            key: attempt.map(|a| Arc::clone(&a.key)),
            model: self.model.clone(),
            is_success: success,
            source_ip: self.source_ip.clone(),
            status_code: status,
            request_path: self.request_path.clone(),
            duration_ms: self.started.elapsed().as_millis() as i64,
            error_message: error.chars().take(2048).collect(),
            user_agent: self.user_agent.clone(),
            request_type,
            upstream_addr: attempt.map(|a| a.upstream_addr.clone()).unwrap_or_default(),
            is_stream: self.is_stream,
            request_body: self.request_body.clone(),
            usage,
            proxy_key: self.proxy_key.clone(),
        });
    }
}

/// Makes sure a request leaves exactly one final row: if it is dropped before [`RequestLog::finish`]
/// (actix dropped the handler: the client's connection failed, or the server stopped), it records
/// a 499, or the server's cut once the stop deadline has passed.
pub struct RequestLog {
    ctx: Option<LogContext>,
}

impl RequestLog {
    /// Starts the log of a request.
    pub fn new(ctx: LogContext) -> Self {
        Self { ctx: Some(ctx) }
    }

    /// A failed attempt; `last` marks the one whose failure is returned to the client.
    pub fn attempt_failed(&mut self, attempt: &AttemptInfo, status: u16, error: &str, last: bool) {
        let Some(ctx) = &self.ctx else { return };
        let kind = if last {
            RequestType::Final
        } else {
            RequestType::Retry
        };
        ctx.send(
            Some(attempt),
            kind,
            i32::from(status),
            false,
            error.to_string(),
        );
        if last {
            self.ctx = None;
        }
    }

    /// A final failure without an attempt (no key, rejected model).
    pub fn failed_without_attempt(mut self, status: u16, error: &str) {
        if let Some(ctx) = self.ctx.take() {
            ctx.send(
                None,
                RequestType::Final,
                i32::from(status),
                false,
                error.to_string(),
            );
        }
    }

    /// The answer is complete already (a rewritten model list): the final row now.
    pub fn finished(mut self, attempt: &AttemptInfo, status: u16, error: Option<String>) {
        if let Some(ctx) = self.ctx.take() {
            let success = status < 400 && error.is_none();
            ctx.send(
                Some(attempt),
                RequestType::Final,
                i32::from(status),
                success,
                error.unwrap_or_default(),
            );
        }
    }

    /// The upstream answered; the final row is written when `body` ends. The body ends early,
    /// with an error, when the client leaves or the stop deadline passes while it streams.
    pub fn finish<S>(
        mut self,
        attempt: AttemptInfo,
        status: u16,
        body: S,
        interrupts: Interrupts,
    ) -> LoggedBody<S> {
        LoggedBody {
            inner: body,
            ctx: self.ctx.take(),
            attempt,
            status: i32::from(status),
            success: status < 400,
            interrupts,
            usage: None,
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.send_interrupted(None);
        }
    }
}

/// Why a relayed body ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream response broke off: {0}")]
    Upstream(String),
    #[error("{0}")]
    Interrupted(&'static str),
}

/// A response body that writes the request's final row when it ends: success when the upstream
/// finished, a failure when the upstream broke off, 499 when the client left first, the server's
/// cut when the stop deadline passed. With a [`UsageScanner`] it also reads the tokens from the
/// chunks it passes on (holding none back) and records them in the row and the metrics; only a
/// response relayed to its end has its usage recorded, as a cut one may not have reported it yet.
pub struct LoggedBody<S> {
    inner: S,
    ctx: Option<LogContext>,
    attempt: AttemptInfo,
    status: i32,
    success: bool,
    interrupts: Interrupts,
    usage: Option<(UsageScanner, Arc<Metrics>)>,
}

impl<S> LoggedBody<S> {
    /// Reads token usage from the relayed chunks and counts it in `metrics`.
    pub fn scanning(mut self, scanner: UsageScanner, metrics: Arc<Metrics>) -> Self {
        self.usage = Some((scanner, metrics));
        self
    }

    /// The usage of a response that ended normally, counted in the metrics.
    fn finished_usage(&mut self) -> TokenUsage {
        let (Some((scanner, metrics)), Some(ctx)) = (self.usage.as_mut(), self.ctx.as_ref()) else {
            return TokenUsage::default();
        };
        let usage = scanner.finish();
        metrics.observe_tokens(&ctx.group_name, &ctx.model, &usage);
        usage
    }
}

impl<S, E> Stream for LoggedBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, RelayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(cause) = this.interrupts.poll_interrupt(cx) {
            let (status, message) = interrupted(cause, true);
            if let Some(ctx) = this.ctx.take() {
                ctx.send(
                    Some(&this.attempt),
                    RequestType::Final,
                    i32::from(status),
                    false,
                    message.into(),
                );
            }
            // Ending with an error makes actix drop the connection; dropping this body drops
            // the upstream response, whose connection then closes.
            return Poll::Ready(Some(Err(RelayError::Interrupted(message))));
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some((scanner, _)) = this.usage.as_mut() {
                    scanner.feed(chunk);
                }
            }
            Poll::Ready(None) => {
                let usage = this.finished_usage();
                if let Some(ctx) = this.ctx.take() {
                    ctx.send_with_usage(
                        Some(&this.attempt),
                        RequestType::Final,
                        this.status,
                        this.success,
                        String::new(),
                        usage,
                    );
                }
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(ctx) = this.ctx.take() {
                    let message = format!("upstream response broke off: {err}");
                    ctx.send(
                        Some(&this.attempt),
                        RequestType::Final,
                        this.status,
                        false,
                        message,
                    );
                }
            }
            _ => {}
        }
        polled.map(|item| item.map(|r| r.map_err(|e| RelayError::Upstream(e.to_string()))))
    }
}

impl<S> Drop for LoggedBody<S> {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.send_interrupted(Some(&self.attempt));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary_with_a_note() {
        assert_eq!(loggable_body(b"{}"), "{}");
        let body = "é".repeat(40_000);
        let logged = loggable_body(body.as_bytes());
        assert!(
            logged.contains("[truncated: 65000 of 80000 bytes logged]"),
            "{}",
            &logged[logged.len() - 60..]
        );
    }
}
