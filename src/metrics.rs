//! Prometheus metrics (served by `admin::prometheus` at `GET /metrics`, off unless
//! `ENABLE_METRICS=true`): request counts, upstream
//! latency, the proxy's own overhead, key states per group, the log buffer, and the leader flag.
//! Labels are bounded: group names, channel types and status classes — never keys or paths.
//! Token counters carry the model too, but only the first [`MAX_MODEL_LABELS`] models seen get
//! their own label (clients choose model names); later ones count under `other`.

use std::time::Duration;

use gpt_load_actors::domain::TokenUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Labels of per-request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub group: String,
    pub channel: String,
    pub status_class: String,
}

/// Labels of per-group series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

/// Labels of token counters; `kind` is input, output, total, cached, cache_write or reasoning.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub group: String,
    pub model: String,
    pub kind: String,
}

/// Labels of the answered-requests-by-usage counter; `usage` is `known` or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    pub group: String,
    pub usage: String,
}

/// Distinct model labels on token counters before the rest count as `other`.
pub const MAX_MODEL_LABELS: usize = 100;
/// Model labels are cut to this many characters.
const MODEL_LABEL_CHARS: usize = 64;

/// Labels of key-state series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub group: String,
    pub state: String,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ]
    .into_iter()
}

fn overhead_buckets() -> impl Iterator<Item = f64> {
    [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    ]
    .into_iter()
}

/// The service's metric families.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub upstream_seconds: Family<GroupLabels, Histogram>,
    pub overhead_seconds: Histogram,
    pub tokens: Family<TokenLabels, Counter>,
    pub usage_requests: Family<UsageLabels, Counter>,
    models: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            upstream_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            overhead_seconds: Histogram::new(overhead_buckets()),
            tokens: Family::default(),
            usage_requests: Family::default(),
            models: parking_lot::Mutex::new(std::collections::HashSet::new()),
        }
    }
}

impl Metrics {
    /// Counts one finished proxied request.
    pub fn observe(
        &self,
        group: &str,
        channel: &str,
        status: u16,
        upstream: Duration,
        overhead: Duration,
    ) {
        let status_class = format!("{}xx", status / 100);
        self.requests
            .get_or_create(&RequestLabels {
                group: group.to_string(),
                channel: channel.to_string(),
                status_class,
            })
            .inc();
        self.upstream_seconds
            .get_or_create(&GroupLabels {
                group: group.to_string(),
            })
            .observe(upstream.as_secs_f64());
        self.overhead_seconds.observe(overhead.as_secs_f64());
    }
}

impl Metrics {
    /// Counts the tokens of one answered request (and whether its usage was known).
    pub fn observe_tokens(&self, group: &str, model: &str, usage: &TokenUsage) {
        let known = if usage.is_known() { "known" } else { "unknown" };
        self.usage_requests
            .get_or_create(&UsageLabels {
                group: group.to_string(),
                usage: known.to_string(),
            })
            .inc();
        if !usage.is_known() {
            return;
        }
        let model = self.model_label(model);
        let kinds = [
            ("input", usage.input),
            ("output", usage.output),
            ("total", usage.total),
            ("cached", usage.cached),
            ("cache_write", usage.cache_write),
            ("reasoning", usage.reasoning),
        ];
        for (kind, count) in kinds {
            let Some(count) = count.and_then(|c| u64::try_from(c).ok()) else {
                continue;
            };
            self.tokens
                .get_or_create(&TokenLabels {
                    group: group.to_string(),
                    model: model.clone(),
                    kind: kind.to_string(),
                })
                .inc_by(count);
        }
    }

    /// The label of `model`: itself (cut) while fewer than [`MAX_MODEL_LABELS`] are in use.
    fn model_label(&self, model: &str) -> String {
        let model: String = model.chars().take(MODEL_LABEL_CHARS).collect();
        let mut models = self.models.lock();
        if models.contains(&model) {
            return model;
        }
        if models.len() < MAX_MODEL_LABELS {
            models.insert(model.clone());
            return model;
        }
        "other".to_string()
    }
}
