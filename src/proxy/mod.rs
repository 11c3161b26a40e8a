//! The `/proxy/{group}/{path}` handler: authenticate the client, pick the serving group (an
//! aggregate picks one member per request), lease a key, rewrite and forward the request, retry a
//! failed attempt with another key, and stream the upstream's answer back unbuffered.

pub mod classify;
pub mod decode;
pub mod log;
pub mod outbound;
pub mod relay;
pub mod rewrite;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use awc::error::SendRequestError;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use gpt_load_actors::domain::GroupId;
use gpt_load_actors::group_registry::{GroupView, Snapshot};
use gpt_load_actors::key_pool::{Lease, ReportOutcome};
use gpt_load_actors::key_state::FailureClass;

use crate::channel::{self, BodyProbe, Channel, InboundRequest};
use crate::http::credentials;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::usage::{UsageScanner, Wire};
use log::{loggable_body, AttemptInfo, LogContext, RequestLog};
use relay::{relay, transport_failure, Failure};
use rewrite::{Redirect, RuleContext};
use upstream::UpstreamClients;

/// Error bodies larger than this are cut when read for retry decisions.
const ERROR_BODY_LIMIT: usize = 1 << 20;
/// Model lists are read whole to be rewritten.
const MODEL_LIST_LIMIT: usize = 8 << 20;
/// How long reading a failed attempt's error body may take.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream redirects followed per attempt, as GPT-Load's HTTP client does.
const MAX_REDIRECTS: usize = 10;

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

/// Credentials removed when an upstream redirects to another host.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
];

/// Handles one proxied request.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    clients: web::Data<UpstreamClients>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let credential =
        credentials::extract(req.headers(), req.query_string()).ok_or(ApiError::Unauthorized)?;
    let group_name = req.match_info().get("group").unwrap_or_default();
    let snapshot = state.snapshot.load_full();
    let requested = snapshot
        .groups
        .get(group_name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("Group '{group_name}' not found")))?;
    let in_group = credentials::position(&credential, &requested.proxy_keys);
    let in_global = credentials::position(&credential, &snapshot.global_proxy_keys);
    let proxy_key = match (in_group, in_global) {
        (Some(i), _) => ("group", i),
        (None, Some(i)) => ("global", i),
        (None, None) => return Err(ApiError::Unauthorized),
    };
    let proxy_key = credentials::identity(
        proxy_key.0,
        proxy_key.1,
        &state.repo.codec.hash(&credential),
    );

    let body = read_body(&req, payload, state.config.max_request_body_bytes).await?;
    let (group, first_lease) = serving_group(&state, &snapshot, &requested).await?;
    drop(snapshot);
    let channel = channel::for_type(&group.record.channel_type).ok_or_else(|| {
        ApiError::Internal(format!(
            "Failed to get channel for group '{}'",
            group.record.name
        ))
    })?;

    let tail = upstream_path(req.uri().path(), group_name);
    let query = credentials::query_without_key(req.query_string());
    let original = BodyProbe::parse(&body);
    let is_stream = channel.is_stream(&InboundRequest {
        method: req.method(),
        path: tail,
        query: &query,
        headers: req.headers(),
        body: &original,
    });
    // Parsing JSON costs time in proportion to the body (long chats run to megabytes): only a
    // body the overrides changed is parsed again.
    let unchanged = body.clone();
    let mut body = rewrite::apply_param_overrides(body, &group.record.param_overrides);
    if is_stream
        && group.config.stream_include_usage
        && tail.ends_with("/chat/completions")
        && Wire::detect(channel.name(), tail) == Wire::OpenAiChat
    {
        body = rewrite::add_include_usage(body);
    }
    let probe = if body.as_ptr() == unchanged.as_ptr() && body.len() == unchanged.len() {
        original.clone()
    } else {
        BodyProbe::parse(&body)
    };
    drop(unchanged);
    let inbound = InboundRequest {
        method: req.method(),
        path: tail,
        query: &query,
        headers: req.headers(),
        body: &probe,
    };
    let model = channel.model(&inbound);
    let is_model_list = !group.redirects.is_empty() && channel.is_model_list(&inbound);
    let strict = group.record.model_redirect_strict;
    let redirect = match (&model, channel.model_in_path(tail)) {
        (Some(model), true) => rewrite::redirect_path(tail, model, &group.redirects, strict),
        _ => rewrite::redirect_body(&body, &group.redirects, strict),
    };
    let client_ip = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("")
        .to_string();
    let log_bodies = group.config.enable_request_body_logging;
    let via_aggregate = !Arc::ptr_eq(&group, &requested);
    let mut log = RequestLog::new(LogContext {
        records: state
            .config
            .enable_request_logs
            .then(|| state.log_queue.clone()),
        started,
        group_id: group.record.id,
        group_name: group.record.name.clone(),
        parent_group_id: if via_aggregate {
            requested.record.id
        } else {
            0
        },
        parent_group_name: if via_aggregate {
            requested.record.name.clone()
        } else {
            String::new()
        },
        model: model.clone().unwrap_or_default(),
        source_ip: client_ip.clone(),
        request_path: logged_path(req.uri().path(), &query),
        is_stream,
        user_agent: if log_bodies {
            header_text(req.headers(), header::USER_AGENT)
        } else {
            String::new()
        },
        request_body: if log_bodies {
            loggable_body(&body)
        } else {
            String::new()
        },
        proxy_key,
    });
    let (body, path) = match redirect {
        Redirect::Keep => (body, tail.to_string()),
        Redirect::Body(rewritten) => (rewritten, tail.to_string()),
        Redirect::Path(rewritten) => (body, rewritten),
        Redirect::Reject(model) => {
            let err = ApiError::BadRequest(format!(
                "model '{model}' is not configured in redirect rules"
            ));
            log.failed_without_attempt(400, &err.to_string());
            return Err(err);
        }
    };

    let forward = Forward {
        method: req.method().clone(),
        path,
        query,
        headers: forwarded_headers(req.headers()),
        body,
        client_ip,
        is_stream,
    };
    let outcome = attempts(
        &state,
        &clients,
        &group,
        channel,
        &forward,
        first_lease,
        &mut log,
    )
    .await?;
    let upstream_time = log.upstream_time();
    let mut response = match outcome {
        Attempted::Success(mut response, attempt, first) => {
            let status = response.status();
            if is_model_list {
                let reply = rewrite_model_list(response, &group, &forward.query).await;
                drop(log.finish(
                    attempt,
                    status.as_u16(),
                    futures_util::stream::empty::<Result<Bytes, ApiError>>(),
                ));
                reply?
            } else {
                let headers = response.headers().clone();
                let rest = response.take_payload();
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
                    )
                    .scanning(scanner, Arc::clone(&state.metrics));
                relay(status, &headers, body, is_stream)
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
                ApiError::NoKeysAvailable("No active API keys available for this group".into());
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

/// The inbound path and query as logged (the proxy key is already removed from the query).
fn logged_path(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The request as it goes upstream, the same for every attempt.
struct Forward {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    client_ip: String,
    is_stream: bool,
}

enum Attempted {
    /// The upstream answered; the first body chunk when it was awaited already.
    Success(awc::ClientResponse, AttemptInfo, Option<Bytes>),
    /// Every attempt failed; the last failure goes to the client.
    Failed(Failure, AttemptInfo),
    NoKeys,
}

/// Runs attempts with different keys until one is not a failover failure or none are left.
async fn attempts(
    state: &AppState,
    clients: &UpstreamClients,
    group: &Arc<GroupView>,
    channel: &'static dyn Channel,
    forward: &Forward,
    first_lease: Option<Lease>,
    log: &mut RequestLog,
) -> Result<Attempted, ApiError> {
    let config = &group.config;
    let client = clients.get(config);
    let head_timeout = if forward.is_stream {
        config.response_header_timeout_secs
    } else {
        config
            .response_header_timeout_secs
            .min(config.request_timeout_secs)
    };
    let first_byte = Duration::from_secs(config.first_byte_timeout_secs.max(0) as u64);
    let mut head_timeout = Duration::from_secs(head_timeout.max(1) as u64);
    if !first_byte.is_zero() {
        head_timeout = head_timeout.min(first_byte);
    }

    let mut tried = Vec::new();
    let mut pending = first_lease;
    // The latest failure is held back: it is a retry row if another attempt follows, else final.
    let mut last_failure: Option<(Failure, AttemptInfo)> = None;
    for _attempt in 0..=config.max_retries.max(0) {
        let lease = match pending.take() {
            Some(lease) => lease,
            None => match lease(state, group.record.id, &tried).await? {
                Some(lease) => lease,
                None => break,
            },
        };
        tried.push(lease.key_id);
        let base = group.upstreams.pick().ok_or_else(|| {
            ApiError::Internal(
                "Failed to build upstream URL: no upstream has a positive weight".into(),
            )
        })?;

        let secret = lease.secret.expose();
        let mut headers = forward.headers.clone();
        let mut query = forward.query.clone();
        // Gemini decides by the full upstream path: its OpenAI surface may be in the base URL.
        let target = format!("{base}{}", forward.path);
        channel.inject_key(&target, &mut headers, &mut query, secret);
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
        let url = if query.is_empty() {
            target
        } else {
            format!("{target}?{query}")
        };
        let sending = std::time::Instant::now();
        let sent = send_following_redirects(
            &client,
            forward.method.clone(),
            url,
            headers,
            forward.body.clone(),
            head_timeout,
        )
        .await;
        log.add_upstream_time(sending.elapsed());

        let attempt = AttemptInfo {
            key_id: lease.key_id,
            key: Arc::clone(&lease.secret),
            upstream_addr: logged_path(&format!("{base}{}", forward.path), &forward.query),
        };
        if let Some((previous, info)) = last_failure.take() {
            log.attempt_failed(
                &info,
                previous.status().as_u16(),
                &previous.message(),
                false,
            );
        }
        let failure = match sent {
            Ok(mut response)
                if !config
                    .failover_status_codes
                    .contains(response.status().as_u16()) =>
            {
                // The client's head is committed only once the first body bytes are here, so an
                // upstream that stalls before them can still be retried with another key.
                if first_byte.is_zero() {
                    // A proxied success changes no key state (failure counts are cumulative), so
                    // it costs no message to the pool.
                    return Ok(Attempted::Success(response, attempt, None));
                }
                let waiting = std::time::Instant::now();
                let first = tokio::time::timeout(first_byte, response.next()).await;
                log.add_upstream_time(waiting.elapsed());
                match first {
                    Ok(Some(Ok(chunk))) => {
                        return Ok(Attempted::Success(response, attempt, Some(chunk)))
                    }
                    Ok(None) => return Ok(Attempted::Success(response, attempt, None)),
                    Ok(Some(Err(err))) => Failure::Transport {
                        status: StatusCode::BAD_GATEWAY,
                        message: format!(
                            "Upstream response broke off before its first byte: {err}"
                        ),
                    },
                    Err(_) => Failure::Transport {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        message: format!(
                            "Upstream sent no response bytes within {} s",
                            first_byte.as_secs()
                        ),
                    },
                }
            }
            Ok(mut response) => {
                let status = response.status();
                let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
                let encoding = response
                    .headers()
                    .get(header::CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = match tokio::time::timeout(
                    ERROR_BODY_TIMEOUT,
                    response.body().limit(ERROR_BODY_LIMIT),
                )
                .await
                {
                    Ok(Ok(bytes)) => bytes,
                    _ => Bytes::new(),
                };
                let retry_after = classify::retry_after(response.headers());
                Failure::Status {
                    status,
                    content_type,
                    encoding,
                    retry_after,
                    body,
                }
            }
            Err(err) => transport_failure(&err),
        };
        let failure = failure.redacted(secret);
        let class = failure.class();
        tracing::warn!(
            group = %group.record.name,
            key = %lease.secret,
            status = failure.status().as_u16(),
            class = class.as_str(),
            error = %failure.message(),
            "Upstream attempt failed."
        );
        report(state, group, lease.key_id, class).await;
        last_failure = Some((failure, attempt));
    }
    Ok(match last_failure {
        Some((failure, attempt)) => Attempted::Failed(failure, attempt),
        None => Attempted::NoKeys,
    })
}

async fn lease(
    state: &AppState,
    group_id: GroupId,
    tried: &[i64],
) -> Result<Option<Lease>, ApiError> {
    // The pool actor publishes its rings; reading them costs no message on the hot path.
    Ok(state.leases.lease(group_id, tried))
}

/// The group that serves this request, with its first key when choosing it needed one. An
/// aggregate picks a member by smooth weighted round robin, skipping members with no usable key;
/// the choice holds for every retry of the request.
async fn serving_group(
    state: &AppState,
    snapshot: &Snapshot,
    requested: &Arc<GroupView>,
) -> Result<(Arc<GroupView>, Option<Lease>), ApiError> {
    if !requested.record.is_aggregate() {
        return Ok((Arc::clone(requested), None));
    }
    // Members without a usable key are left out before choosing, so the weights of the others
    // stay exact; a member emptied in the meantime is skipped on the lease.
    let mut skipped: Vec<GroupId> = Vec::new();
    for _ in 0..requested.members.len() {
        let usable = |id: &GroupId| !skipped.contains(id) && state.usable_keys.count(*id) > 0;
        let Some(&member_id) = requested.members.pick_where(usable) else {
            break;
        };
        skipped.push(member_id);
        let Some(member) = snapshot
            .by_id
            .get(&member_id)
            .filter(|m| !m.record.is_aggregate())
        else {
            continue;
        };
        if let Some(first) = lease(state, member_id, &[]).await? {
            return Ok((Arc::clone(member), Some(first)));
        }
    }
    Err(ApiError::NoKeysAvailable("No available sub-groups".into()))
}

/// Sends a request, following upstream redirects itself so that credentials are stripped when a
/// redirect leaves the upstream's host (a client following it would carry its proxy key there).
async fn send_following_redirects(
    client: &awc::Client,
    mut method: Method,
    mut url: String,
    mut headers: HeaderMap,
    mut body: Bytes,
    timeout: Duration,
) -> Result<awc::ClientResponse, SendRequestError> {
    for _ in 0..=MAX_REDIRECTS {
        let mut request = client
            .request(method.clone(), url.as_str())
            .no_decompress()
            .timeout(timeout);
        *request.headers_mut() = headers.clone();
        let response = request.send_body(body.clone()).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let (true, Some(location)) = (status.is_redirection(), location) else {
            return Ok(response);
        };
        let Some(next) = url::Url::parse(&url)
            .ok()
            .and_then(|base| base.join(location).ok())
        else {
            return Ok(response);
        };
        let same_host = url::Url::parse(&url).ok().is_some_and(|u| {
            u.host_str() == next.host_str()
                && u.port_or_known_default() == next.port_or_known_default()
        });
        let mut next = next;
        if !same_host {
            for name in CREDENTIAL_HEADERS {
                headers.remove(name);
            }
            let kept: Vec<(String, String)> = next
                .query_pairs()
                .filter(|(k, _)| k != "key")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                next.set_query(None);
            } else {
                next.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        if status == StatusCode::SEE_OTHER
            || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                && method == Method::POST)
        {
            method = Method::GET;
            body = Bytes::new();
            headers.remove(header::CONTENT_TYPE);
        }
        url = next.to_string();
    }
    client
        .request(method, url.as_str())
        .no_decompress()
        .timeout(timeout)
        .send()
        .await
}

/// Replaces a model-list reply with one rewritten per the group's redirect rules.
async fn rewrite_model_list(
    mut response: awc::ClientResponse,
    group: &GroupView,
    query: &str,
) -> Result<HttpResponse, ApiError> {
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let raw = response
        .body()
        .limit(MODEL_LIST_LIMIT)
        .await
        .map_err(|e| ApiError::Upstream {
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
        .ok_or_else(|| ApiError::Upstream {
            status: StatusCode::BAD_GATEWAY,
            message: "Failed to process response".into(),
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(rewritten))
}

/// Reports a failed attempt and waits until the pool has applied it, so the retry that follows
/// (and the next request) already sees the key cooling down or blacklisted. Only the failure path
/// pays this round trip.
async fn report(state: &AppState, group: &GroupView, key_id: i64, class: FailureClass) {
    let applied = state
        .pool
        .send(ReportOutcome {
            group_id: group.record.id,
            key_id,
            failure: Some(class),
            policy: group.config.health,
            floor_percent: group.config.min_usable_keys_percent,
        })
        .await;
    if let Err(err) = applied {
        tracing::warn!(error = %err, "The key pool did not take a failure report.");
    }
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
