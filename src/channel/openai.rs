//! The `openai` channel: `Authorization: Bearer <key>`, model and `stream` from the JSON body.

use actix_web::http::header::HeaderMap;
use serde_json::json;

use super::{join_endpoint, json_headers, set_bearer, Channel, ValidationRequest};

/// OpenAI and OpenAI-compatible upstreams (chat completions).
pub struct OpenAi;

impl Channel for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn inject_key(&self, _path: &str, headers: &mut HeaderMap, _query: &mut String, key: &str) {
        set_bearer(headers, key);
    }

    fn validation_request(
        &self,
        base: &str,
        test_model: &str,
        endpoint: &str,
        key: &str,
    ) -> ValidationRequest {
        let endpoint = if endpoint.is_empty() {
            "/v1/chat/completions"
        } else {
            endpoint
        };
        let mut headers = json_headers();
        set_bearer(&mut headers, key);
        ValidationRequest {
            url: join_endpoint(base, endpoint),
            headers,
            body: json!({"model": test_model, "messages": [{"role": "user", "content": "hi"}]}),
        }
    }
}
