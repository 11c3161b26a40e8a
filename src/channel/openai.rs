//! The `openai` channel: `Authorization: Bearer <key>`, model and `stream` from the JSON body.

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::Method;
use serde_json::json;

use super::{join_endpoint, Channel, ValidationRequest};

/// OpenAI and OpenAI-compatible upstreams.
pub struct OpenAi;

impl Channel for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn inject_key(&self, headers: &mut HeaderMap, _query: &mut String, key: &str) {
        match HeaderValue::from_str(&format!("Bearer {key}")) {
            Ok(value) => {
                headers.insert(AUTHORIZATION, value);
            }
            // A key with control characters cannot be sent; the upstream will reject the
            // request without credentials and the key will be counted as failing.
            Err(_) => tracing::warn!("Upstream key contains characters not allowed in a header."),
        }
    }

    fn default_validation_endpoint(&self) -> &'static str {
        "/v1/chat/completions"
    }

    fn validation_request(
        &self,
        upstream_base: &str,
        test_model: &str,
        validation_endpoint: &str,
        key: &str,
    ) -> ValidationRequest {
        let endpoint = if validation_endpoint.trim().is_empty() {
            self.default_validation_endpoint()
        } else {
            validation_endpoint.trim()
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.inject_key(&mut headers, &mut String::new(), key);
        let body = json!({"model": test_model, "messages": [{"role": "user", "content": "hi"}]});
        ValidationRequest {
            method: Method::POST,
            url: join_endpoint(upstream_base, endpoint),
            headers,
            body: body.to_string().into(),
        }
    }
}
