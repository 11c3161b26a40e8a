//! Probes upstream keys with their channel's validation request (GPT-Load §5.5): any 2xx passes,
//! anything else fails with `[status N] <upstream message>` or the transport error. Results are
//! applied to the stored key (§6.3) by [`apply`].

use std::time::Duration;

use awc::error::SendRequestError;
use gpt_load_actors::group_registry::GroupView;

use crate::channel;
use crate::db::models::KeyRow;
use crate::db::DbError;
use crate::proxy::relay::{parse_error_message, redact};
use crate::proxy::rewrite::{apply_header_rules, RuleContext};
use crate::state::AppState;

/// Upstream errors that say nothing about the key (quota or prompt size), so they are never
/// counted against it.
const UNCOUNTED: [&str; 2] = [
    "resource has been exhausted",
    "please reduce the length of the messages",
];

/// Why a key failed its probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFailure {
    /// `[status N] message` or the transport error, with the key masked.
    pub message: String,
}

impl ProbeFailure {
    /// True when the failure must not count against the key.
    pub fn is_uncounted(&self) -> bool {
        let lower = self.message.to_ascii_lowercase();
        UNCOUNTED.iter().any(|p| lower.contains(p))
    }
}

/// Sends validation requests with one pooled client. Not `Send` (awc): build it on the thread
/// that uses it.
pub struct Prober {
    client: awc::Client,
}

impl Prober {
    /// A prober whose requests time out after `timeout` (awc's own default would be 5 s).
    pub fn new(timeout: Duration) -> Self {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(timeout)
            .finish();
        Prober { client }
    }

    /// Probes `key` against one of the group's upstreams.
    pub async fn probe(&self, group: &GroupView, key: &str) -> Result<(), ProbeFailure> {
        let fail = |message: String| ProbeFailure {
            message: redact(&message, key),
        };
        let channel = channel::for_type(&group.record.channel_type).ok_or_else(|| {
            fail(format!(
                "channel type '{}' cannot validate keys",
                group.record.channel_type
            ))
        })?;
        let base = group
            .upstreams
            .pick()
            .ok_or_else(|| fail("the group has no upstream with a positive weight".into()))?;
        let mut req = channel.validation_request(
            base,
            &group.record.test_model,
            &group.record.validation_endpoint,
            key,
        );
        // As GPT-Load: the group's header rules apply, with the loopback address as client IP.
        apply_header_rules(
            &mut req.headers,
            &group.record.header_rules,
            &RuleContext {
                client_ip: "127.0.0.1",
                group_name: &group.record.name,
                api_key: key,
            },
        );
        let mut builder = self.client.post(req.url.as_str());
        for (name, value) in req.headers.iter() {
            builder = builder.insert_header((name.clone(), value.clone()));
        }
        let mut response = builder
            .send_body(req.body.to_string())
            .await
            .map_err(|e| fail(transport_error(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.body().limit(1 << 20).await.unwrap_or_default();
        Err(fail(format!(
            "[status {}] {}",
            status.as_u16(),
            parse_error_message(&body)
        )))
    }
}

fn transport_error(err: &SendRequestError) -> String {
    match err {
        SendRequestError::Timeout => "validation request timed out".into(),
        other => format!("validation request failed: {other}"),
    }
}

/// Stores a probe result for a key (a pass reactivates it and zeroes its failures; a counted
/// failure adds one and may blacklist it at the group's threshold). Returns the key's new
/// state when it changed, for the pool.
pub async fn apply(
    state: &AppState,
    key: &KeyRow,
    result: &Result<(), ProbeFailure>,
    blacklist_threshold: i64,
) -> Result<Option<KeyRow>, DbError> {
    match result {
        Ok(()) => {
            state
                .repo
                .record_probe(key.id, true, blacklist_threshold)
                .await
        }
        Err(failure) if failure.is_uncounted() => Ok(None),
        Err(_) => {
            state
                .repo
                .record_probe(key.id, false, blacklist_threshold)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_and_length_errors_are_uncounted() {
        let f = |m: &str| ProbeFailure { message: m.into() };
        assert!(f("[status 429] Resource has been exhausted (e.g. check quota).").is_uncounted());
        assert!(!f("[status 401] Incorrect API key provided").is_uncounted());
    }
}
