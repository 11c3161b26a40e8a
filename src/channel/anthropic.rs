//! The `anthropic` channel: `x-api-key` plus a forced `anthropic-version: 2023-06-01`; other client
//! headers such as `anthropic-beta` pass through.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::{join_endpoint, json_headers, Channel, ValidationRequest};

const API_VERSION: &str = "2023-06-01";

/// Anthropic's Messages API.
pub struct Anthropic;

fn set_key(headers: &mut HeaderMap, key: &str) {
    match HeaderValue::from_str(key) {
        Ok(value) => {
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        Err(_) => tracing::warn!("Upstream key contains characters not allowed in a header."),
    }
    headers.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(API_VERSION),
    );
}

impl Channel for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn inject_key(&self, _path: &str, headers: &mut HeaderMap, _query: &mut String, key: &str) {
        set_key(headers, key);
    }

    fn validation_request(
        &self,
        base: &str,
        test_model: &str,
        endpoint: &str,
        key: &str,
    ) -> ValidationRequest {
        let endpoint = if endpoint.is_empty() {
            "/v1/messages"
        } else {
            endpoint
        };
        let mut headers = json_headers();
        set_key(&mut headers, key);
        ValidationRequest {
            url: join_endpoint(base, endpoint),
            headers,
            body: json!({"model": test_model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
        }
    }
}
