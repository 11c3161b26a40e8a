//! Attempt loop: lease a key, pick an upstream, inject the key, apply the header rules, send;
//! on a failover failure report the key and try another, until an answer can go to the client,
//! no key or retry is left, or the client or the server's stop ends the request. Retrying is only
//! possible before the response head is committed to the client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use gpt_load_actors::group_registry::GroupView;
use gpt_load_actors::key_pool::{FailureReport, Lease};
use gpt_load_actors::key_state::FailureClass;
use gpt_load_actors::settings::EffectiveConfig;

use super::classify;
use super::context::RequestContext;
use super::failure::{transport_failure, Failure};
use super::prepare::logged_path;
use super::record::AttemptInfo;
use super::resolve::lease;
use super::rewrite::{self, RuleContext};
use super::send::{send, Outgoing};
use super::state::ProxyState;
use super::upstream::UpstreamClients;
use crate::proxy::error::ProxyError;

/// Error bodies larger than this are cut when read for retry decisions.
const ERROR_BODY_LIMIT: usize = 1 << 20;
/// How long reading a failed attempt's error body may take.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the attempts ended.
pub enum Attempted {
    /// The upstream answered; the first body chunk when it was awaited already.
    Success(awc::ClientResponse, AttemptInfo, Option<Bytes>),
    /// Every attempt failed, or one ended the request; that failure goes to the client.
    Failed(Failure, AttemptInfo),
    NoKeys,
}

/// The time limits of one attempt, from the group's effective config.
struct Timeouts {
    /// Until the response head.
    head: Duration,
    /// Until the first body byte; zero when the head alone commits the response.
    first_byte: Duration,
}

impl Timeouts {
    fn new(config: &EffectiveConfig, is_stream: bool) -> Self {
        let head = if is_stream {
            config.response_header_timeout_secs
        } else {
            config
                .response_header_timeout_secs
                .min(config.request_timeout_secs)
        };
        let first_byte = Duration::from_secs(config.first_byte_timeout_secs.max(0) as u64);
        let mut head = Duration::from_secs(head.max(1) as u64);
        if !first_byte.is_zero() {
            head = head.min(first_byte);
        }
        Self { head, first_byte }
    }
}

/// Runs attempts with different keys until one is not a failover failure, none are left, or an
/// interruption ends the request.
pub async fn run(
    state: &ProxyState,
    clients: &UpstreamClients,
    ctx: &mut RequestContext,
) -> Result<Attempted, ProxyError> {
    let group = Arc::clone(&ctx.group);
    let client = clients.get(&group.config);
    let timeouts = Timeouts::new(&group.config, ctx.forward.is_stream);
    let mut tried = Vec::new();
    let mut pending = ctx.first_lease.take();
    // The latest failure is held back: it is a retry row if another attempt follows, else final.
    let mut last_failure: Option<(Failure, AttemptInfo)> = None;
    for _attempt in 0..=group.config.max_retries.max(0) {
        let Some(lease) = pending
            .take()
            .or_else(|| lease(state, group.record.id, ctx.forward.model.as_deref(), &tried))
        else {
            break;
        };
        tried.push(lease.key_id);
        let (outcome, attempt) = try_key(ctx, &client, &group, &lease, &timeouts).await?;
        if let Some((previous, info)) = last_failure.take() {
            ctx.log.attempt_failed(
                &info,
                previous.status().as_u16(),
                &previous.message(),
                false,
            );
        }
        let failure = match outcome {
            Ok((response, first)) => {
                // Only a key leased resting or demoted costs a message (its rest ends).
                let model = ctx.forward.model.as_deref();
                state.pool.report_success(group.record.id, &lease, model);
                return Ok(Attempted::Success(response, attempt, first));
            }
            Err(failure) => failure.redacted(lease.secret.expose()),
        };
        tracing::warn!(
            group = %group.record.name,
            key = %lease.secret,
            status = failure.status().as_u16(),
            class = failure.class_name(),
            error = %failure.message(),
            "Upstream attempt failed."
        );
        if let Some(class) = failure.key_class() {
            let model = ctx.forward.model.clone();
            report(state, &group, lease.key_id, class, model).await;
        }
        let retryable = failure.retryable();
        last_failure = Some((failure, attempt));
        if !retryable {
            break;
        }
    }
    Ok(match last_failure {
        Some((failure, attempt)) => Attempted::Failed(failure, attempt),
        None => Attempted::NoKeys,
    })
}

/// An answer that may go to the client: the response and its first body chunk when awaited.
type Answer = (awc::ClientResponse, Option<Bytes>);

/// One attempt with one key.
async fn try_key(
    ctx: &mut RequestContext,
    client: &awc::Client,
    group: &GroupView,
    lease: &Lease,
    timeouts: &Timeouts,
) -> Result<(Result<Answer, Failure>, AttemptInfo), ProxyError> {
    let base = group.upstreams.pick().ok_or_else(|| {
        ProxyError::Internal(
            "Failed to build upstream URL: no upstream has a positive weight".into(),
        )
    })?;
    let forward = &ctx.forward;
    let secret = lease.secret.expose();
    let mut headers = forward.headers.clone();
    let mut query = forward.query.clone();
    // Gemini decides by the full upstream path: its OpenAI surface may be in the base URL.
    let target = format!("{base}{}", forward.path);
    ctx.channel
        .inject_key(&target, &mut headers, &mut query, secret);
    rewrite::apply_header_rules(
        &mut headers,
        &group.record.header_rules,
        &RuleContext {
            client_ip: &forward.client_ip,
            group_name: &group.record.name,
            api_key: secret,
        },
    );
    if forward.is_stream {
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
    }
    let info = AttemptInfo {
        key_id: lease.key_id,
        key: Arc::clone(&lease.secret),
        upstream_addr: logged_path(&target, &forward.query),
    };
    let url = if query.is_empty() {
        target
    } else {
        format!("{target}?{query}")
    };
    let outgoing = Outgoing {
        method: forward.method.clone(),
        url,
        headers,
        body: &forward.body.bytes,
        timeout: timeouts.head,
    };
    let waiting = Instant::now();
    let sent = ctx.interrupts.guard(send(client, outgoing)).await;
    ctx.upstream_time += waiting.elapsed();
    let outcome = match sent {
        Err(interrupt) => Err(Failure::Local(interrupt)),
        Ok(Err(err)) => Err(transport_failure(&err)),
        Ok(Ok(response))
            if group
                .config
                .failover_status_codes
                .contains(response.status().as_u16()) =>
        {
            Err(failed_answer(ctx, response).await)
        }
        Ok(Ok(response)) => first_byte(ctx, response, timeouts.first_byte).await,
    };
    Ok((outcome, info))
}

/// Waits for the first body bytes: the client's head is committed only once they are here, so an
/// upstream that stalls before them can still be retried with another key.
async fn first_byte(
    ctx: &mut RequestContext,
    mut response: awc::ClientResponse,
    limit: Duration,
) -> Result<Answer, Failure> {
    if limit.is_zero() {
        // A proxied success changes no key state (failure counts are cumulative), so it costs no
        // message to the pool.
        return Ok((response, None));
    }
    let waiting = Instant::now();
    let first = ctx
        .interrupts
        .guard(tokio::time::timeout(limit, response.next()))
        .await;
    ctx.upstream_time += waiting.elapsed();
    match first {
        Err(interrupt) => Err(Failure::Local(interrupt)),
        Ok(Ok(Some(Ok(chunk)))) => Ok((response, Some(chunk))),
        Ok(Ok(None)) => Ok((response, None)),
        Ok(Ok(Some(Err(err)))) => Err(Failure::Transport {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream response broke off before its first byte: {err}"),
        }),
        Ok(Err(_)) => Err(Failure::Transport {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!(
                "Upstream sent no response bytes within {} s",
                limit.as_secs()
            ),
        }),
    }
}

/// Reads a failover answer's error body (bounded in size and time) to classify it.
async fn failed_answer(ctx: &mut RequestContext, mut response: awc::ClientResponse) -> Failure {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = classify::retry_after(response.headers());
    let read = tokio::time::timeout(ERROR_BODY_TIMEOUT, response.body().limit(ERROR_BODY_LIMIT));
    let body = match ctx.interrupts.guard(read).await {
        Err(interrupt) => return Failure::Local(interrupt),
        Ok(Ok(Ok(bytes))) => bytes,
        Ok(_) => Bytes::new(),
    };
    Failure::Upstream {
        status,
        content_type,
        encoding,
        retry_after,
        body,
    }
}

/// Reports a failed attempt and waits until the pool has applied it, so the retry that follows
/// (and the next request) already sees the key cooling down or blacklisted. Only the failure path
/// pays this round trip.
async fn report(
    state: &ProxyState,
    group: &GroupView,
    key_id: i64,
    class: FailureClass,
    model: Option<Arc<str>>,
) {
    let applied = state
        .pool
        .report_failure(FailureReport {
            group_id: group.record.id,
            key_id,
            class,
            model,
            policy: group.config.health,
            floor_percent: group.config.min_usable_keys_percent,
        })
        .await;
    if let Err(err) = applied {
        tracing::warn!(error = %err, "The key pool did not take a failure report.");
    }
}
