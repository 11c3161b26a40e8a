//! Prepare phase: what the channel reads from the request (stream or not, model), the group's
//! parameter overrides and model redirects, the forwarded headers, and the request's log
//! context. A model refused by strict redirect rules ends the request here.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::HttpRequest;
use gpt_load_actors::group_registry::GroupView;
use gpt_load_actors::key_pool::Lease;

use super::authenticate::Target;
use super::body::HeldBody;
use super::cancel::Interrupts;
use super::context::{Forward, RequestContext};
use super::record::{loggable_body, LogContext, RequestLog};
use super::rewrite::{self, Redirect};
use super::state::ProxyState;
use crate::channel::{self, BodyProbe, InboundRequest};
use crate::http::credentials;
use crate::proxy::error::ProxyError;
use crate::usage::Wire;

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

/// The group that serves the request, with the key chosen along with it.
pub struct Serving {
    pub group: Arc<GroupView>,
    pub first_lease: Option<Lease>,
}

/// Builds the request's context, or refuses a model the group's strict redirect rules do not
/// list (400, recorded).
pub fn prepare(
    req: &HttpRequest,
    state: &ProxyState,
    target: Target,
    serving: Serving,
    body: HeldBody,
    started: Instant,
) -> Result<RequestContext, ProxyError> {
    let Serving { group, first_lease } = serving;
    let channel = channel::for_type(&group.record.channel_type).ok_or_else(|| {
        ProxyError::Internal(format!(
            "Failed to get channel for group '{}'",
            group.record.name
        ))
    })?;
    let tail = target.tail.as_str();
    let query = credentials::query_without_key(req.query_string());
    let original = BodyProbe::parse(&body.bytes);
    let is_stream = channel.is_stream(&InboundRequest {
        method: req.method(),
        path: tail,
        query: &query,
        headers: req.headers(),
        body: &original,
    });
    // Parsing JSON costs time in proportion to the body (long chats run to megabytes): only a
    // body the overrides changed is parsed again.
    let mut overridden =
        rewrite::apply_param_overrides(body.bytes.clone(), &group.record.param_overrides);
    if is_stream
        && group.config.stream_include_usage
        && tail.ends_with("/chat/completions")
        && Wire::detect(channel.name(), tail) == Wire::OpenAiChat
    {
        overridden = rewrite::add_include_usage(overridden);
    }
    let probe =
        if overridden.as_ptr() == body.bytes.as_ptr() && overridden.len() == body.bytes.len() {
            original
        } else {
            BodyProbe::parse(&overridden)
        };
    let body = body.replace(overridden);
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
        _ => rewrite::redirect_body(&body.bytes, &group.redirects, strict),
    };
    // Rests are per (key, model) with the model as the upstream sees it, after redirects.
    let upstream_model = model
        .as_deref()
        .map(|m| std::sync::Arc::<str>::from(group.redirects.get(m).map_or(m, String::as_str)));
    let client_ip = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("")
        .to_string();
    let log = RequestLog::new(log_context(
        req,
        state,
        &target,
        &group,
        LogFields {
            started,
            model: model.unwrap_or_default(),
            client_ip: client_ip.clone(),
            query: &query,
            is_stream,
            body: &body.bytes,
        },
    ));
    let (body, path) = match redirect {
        Redirect::Keep => (body, tail.to_string()),
        Redirect::Body(rewritten) => (body.replace(rewritten), tail.to_string()),
        Redirect::Path(rewritten) => (body, rewritten),
        Redirect::Reject(model) => {
            let err = ProxyError::BadRequest(format!(
                "model '{model}' is not configured in redirect rules"
            ));
            log.failed_without_attempt(400, &err.to_string());
            return Err(err);
        }
    };
    Ok(RequestContext {
        started,
        channel,
        first_lease,
        forward: Forward {
            model: upstream_model,
            method: req.method().clone(),
            path,
            query,
            headers: forwarded_headers(req.headers()),
            body,
            client_ip,
            is_stream,
        },
        is_model_list,
        log,
        interrupts: Interrupts::new(req, &state.stop_deadline),
        upstream_time: std::time::Duration::ZERO,
        group,
    })
}

/// What the log context takes from the prepared request.
struct LogFields<'a> {
    started: Instant,
    model: String,
    client_ip: String,
    query: &'a str,
    is_stream: bool,
    body: &'a [u8],
}

fn log_context(
    req: &HttpRequest,
    state: &ProxyState,
    target: &Target,
    group: &Arc<GroupView>,
    fields: LogFields<'_>,
) -> LogContext {
    let log_bodies = group.config.enable_request_body_logging;
    let via_aggregate = !Arc::ptr_eq(group, &target.requested);
    let parent = via_aggregate.then_some(&target.requested.record);
    LogContext {
        records: state
            .config
            .enable_request_logs
            .then(|| state.log_queue.clone()),
        started: fields.started,
        group_id: group.record.id,
        group_name: group.record.name.clone(),
        parent_group_id: parent.map_or(0, |p| p.id),
        parent_group_name: parent.map(|p| p.name.clone()).unwrap_or_default(),
        model: fields.model,
        source_ip: fields.client_ip,
        request_path: logged_path(req.uri().path(), fields.query),
        is_stream: fields.is_stream,
        user_agent: if log_bodies {
            header_text(req.headers(), header::USER_AGENT)
        } else {
            String::new()
        },
        request_body: if log_bodies {
            loggable_body(fields.body)
        } else {
            String::new()
        },
        stop: state.stop_deadline.clone(),
        proxy_key: target.proxy_key.clone(),
    }
}

/// A path and query as logged (the client's credential is already removed from the query).
pub fn logged_path(path: &str, query: &str) -> String {
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
    use actix_web::http::header::{HeaderName, HeaderValue};

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
