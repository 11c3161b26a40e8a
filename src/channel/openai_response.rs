//! The `openai-response` channel: the Responses API (`/v1/responses`), Bearer auth.

use actix_web::http::header::HeaderMap;
use serde_json::json;

use super::{join_endpoint, json_headers, set_bearer, Channel, ValidationRequest};

/// OpenAI's Responses API.
pub struct OpenAiResponse;

impl Channel for OpenAiResponse {
    fn name(&self) -> &'static str {
        "openai-response"
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
            "/v1/responses"
        } else {
            endpoint
        };
        let mut headers = json_headers();
        set_bearer(&mut headers, key);
        ValidationRequest {
            url: join_endpoint(base, endpoint),
            headers,
            body: json!({"model": test_model, "input": "hi"}),
        }
    }
}
