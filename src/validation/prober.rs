//! Probes upstream keys with their channel's validation request (GPT-Load §5.5): any 2xx passes;
//! anything else fails with `[status N] <upstream message>` or the transport error, and a class
//! decided like a proxied failure's (so a probe that meets a 503 or a rate limit does not count
//! against the key). Results go to the key pool by [`apply`], which applies them under the same
//! rules and pool floor as proxied failures and persists them. The manual validation task,
//! `test-multiple` and the background validator all probe through this one type.

use std::time::Duration;

use async_trait::async_trait;
use awc::error::SendRequestError;
use gpt_load_actors::domain::{GroupId, KeyId, KeySecret};
use gpt_load_actors::group_registry::GroupView;
use gpt_load_actors::key_state::FailureClass;
use gpt_load_actors::ports::{KeyProber, ProbeFailure};

use crate::channel;
use crate::proxy::classify::{classify_status, retry_after};
use crate::proxy::failure::{parse_error_message, redact};
use crate::proxy::rewrite::{apply_header_rules, RuleContext};
use crate::service::ServiceError;
use gpt_load_actors::key_pool::KeyPool;

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
        // Problems of the group's own setup say nothing about the key.
        let fail = |message: String| ProbeFailure {
            class: FailureClass::RequestFault,
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
        let mut response =
            builder
                .send_body(req.body.to_string())
                .await
                .map_err(|e| ProbeFailure {
                    class: FailureClass::UpstreamTrouble,
                    message: redact(&transport_error(&e), key),
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers());
        let body = response.body().limit(1 << 20).await.unwrap_or_default();
        Err(ProbeFailure {
            class: classify_status(status.as_u16(), wait, Some(&body)),
            message: redact(
                &format!(
                    "[status {}] {}",
                    status.as_u16(),
                    parse_error_message(&body)
                ),
                key,
            ),
        })
    }
}

#[async_trait(?Send)]
impl KeyProber for Prober {
    async fn probe(&self, group: &GroupView, key: &KeySecret) -> Result<(), ProbeFailure> {
        Prober::probe(self, group, key.expose()).await
    }
}

fn transport_error(err: &SendRequestError) -> String {
    match err {
        SendRequestError::Timeout => "validation request timed out".into(),
        other => format!("validation request failed: {other}"),
    }
}

/// Applies a probe result to a key through the key pool: a pass restores it (active, zero
/// failures, no cooldown), a failure counts under the group's health policy and pool floor, a
/// disabled key never changes. Waits until the change is stored; returns whether there was one.
pub async fn apply(
    pool: &KeyPool,
    group: &GroupView,
    key_id: KeyId,
    result: &Result<(), ProbeFailure>,
) -> Result<bool, ServiceError> {
    let group_id: GroupId = group.record.id;
    let applied = pool
        .apply_probe(
            group_id,
            key_id,
            result.as_ref().err().map(|f| f.class),
            group.config.health,
            group.config.min_usable_keys_percent,
        )
        .await?;
    Ok(applied.stored().await)
}
