//! Probes upstream keys with their channel's validation request (GPT-Load §5.5): any 2xx passes,
//! anything else fails with `[status N] <upstream message>` or the transport error. Results are
//! applied to the stored key (§6.3) by [`apply`].

use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use awc::error::SendRequestError;
use gpt_load_actors::domain::{mask_secret, HeaderRule};
use gpt_load_actors::group_registry::GroupView;

use crate::channel;
use crate::db::models::KeyRow;
use crate::db::DbError;
use crate::proxy::parse_error_message;
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
        apply_header_rules(
            &mut req.headers,
            &group.record.header_rules,
            &group.record.name,
            key,
        );
        let mut builder = self.client.request(req.method, req.url.as_str());
        for (name, value) in req.headers.iter() {
            builder = builder.insert_header((name.clone(), value.clone()));
        }
        let mut response = builder
            .send_body(req.body)
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

fn redact(text: &str, key: &str) -> String {
    if key.is_empty() || !text.contains(key) {
        return text.to_string();
    }
    text.replace(key, &mask_secret(key))
}

/// Applies a group's header rules to a validation request, with the variables GPT-Load offers
/// (`${CLIENT_IP}` is the loopback address: there is no client).
pub fn apply_header_rules(headers: &mut HeaderMap, rules: &[HeaderRule], group: &str, key: &str) {
    for rule in rules {
        let Ok(name) = HeaderName::from_bytes(rule.key.as_bytes()) else {
            continue;
        };
        match rule.action.as_str() {
            "remove" => {
                headers.remove(&name);
            }
            "set" => {
                let now = chrono::Utc::now();
                let value = rule
                    .value
                    .replace("${CLIENT_IP}", "127.0.0.1")
                    .replace("${GROUP_NAME}", group)
                    .replace("${API_KEY}", key)
                    .replace("${TIMESTAMP_MS}", &now.timestamp_millis().to_string())
                    .replace("${TIMESTAMP_S}", &now.timestamp().to_string());
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            _ => {}
        }
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
    fn header_rules_set_and_remove_with_variables() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-drop"),
            HeaderValue::from_static("1"),
        );
        let rules = vec![
            HeaderRule {
                key: "X-Group".into(),
                value: "${GROUP_NAME}-${CLIENT_IP}".into(),
                action: "set".into(),
            },
            HeaderRule {
                key: "X-Drop".into(),
                value: String::new(),
                action: "remove".into(),
            },
        ];
        apply_header_rules(&mut headers, &rules, "g1", "sk-1");
        assert_eq!(headers.get("x-group").unwrap(), "g1-127.0.0.1");
        assert!(headers.get("x-drop").is_none());
    }

    #[test]
    fn quota_and_length_errors_are_uncounted() {
        let f = |m: &str| ProbeFailure { message: m.into() };
        assert!(f("[status 429] Resource has been exhausted (e.g. check quota).").is_uncounted());
        assert!(!f("[status 401] Incorrect API key provided").is_uncounted());
        assert_eq!(
            redact("bad sk-abcdefghijkl", "sk-abcdefghijkl"),
            "bad sk-a****ijkl"
        );
    }
}
