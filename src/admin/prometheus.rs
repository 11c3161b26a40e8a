//! `GET /metrics`: the Prometheus text rendering of [`crate::metrics::Metrics`], key states per
//! group and the log buffer. It lives with the admin API because it may require the admin key.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::AdminState;
use crate::metrics::KeyLabels;

/// `GET /metrics` in the Prometheus text format.
pub async fn handler(req: actix_web::HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if !state.config.enable_metrics {
        return crate::http::error::not_found();
    }
    if state.config.metrics_require_auth {
        let given = crate::http::credentials::extract(req.headers(), req.query_string());
        let outcome = super::weigh_admin_key(&state, &req, given.as_deref());
        if let Err(err) = super::settle(outcome).await {
            return actix_web::ResponseError::error_response(&err);
        }
    }
    let mut registry = Registry::with_prefix("gptload");
    let m = &state.metrics;
    registry.register(
        "requests",
        "Proxied requests by group, channel and status class",
        m.requests.clone(),
    );
    registry.register(
        "upstream_seconds",
        "Time from sending upstream to the response head",
        m.upstream_seconds.clone(),
    );
    registry.register(
        "proxy_overhead_seconds",
        "Time the proxy itself added to a request",
        m.overhead_seconds.clone(),
    );

    registry.register(
        "tokens",
        "Tokens reported by upstreams for answered requests, by group, model and kind",
        m.tokens.clone(),
    );
    registry.register(
        "usage_requests",
        "Answered requests by whether the upstream reported their token usage",
        m.usage_requests.clone(),
    );

    let keys: Family<KeyLabels, Gauge> = Family::default();
    let groups: Vec<(i64, String)> = state
        .snapshot
        .load()
        .by_id
        .values()
        .filter(|g| !g.record.is_aggregate())
        .map(|g| (g.record.id, g.record.name.clone()))
        .collect();
    for (id, name) in groups {
        if let Ok(counts) = state.pool.count(id).await {
            let set = |s: &str, v: usize| {
                keys.get_or_create(&KeyLabels {
                    group: name.clone(),
                    state: s.to_string(),
                })
                .set(v as i64);
            };
            set("usable", counts.active - counts.cooling);
            set("cooling", counts.cooling);
            set("invalid", counts.invalid);
            set("disabled", counts.disabled);
        }
    }
    registry.register("keys", "Keys per group by state", keys);
    let gauge = |v: u64| {
        let g: Gauge = Gauge::default();
        g.set(v as i64);
        g
    };
    let c = &state.log_counters;
    registry.register(
        "log_buffer_depth",
        "Request log records waiting to be written",
        gauge(c.buffered.load(Ordering::Relaxed)),
    );
    registry.register(
        "log_shed",
        "Request log records dropped because the buffer was full",
        gauge(c.shed.load(Ordering::Relaxed)),
    );
    registry.register(
        "log_written",
        "Request log records written",
        gauge(c.written.load(Ordering::Relaxed)),
    );
    registry.register(
        "leader",
        "1 when this node runs the singleton jobs",
        gauge(1),
    );

    let mut body = String::new();
    if encode(&mut body, &registry).is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
