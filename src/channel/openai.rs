//! The `openai` channel: `Authorization: Bearer <key>`, model and `stream` from the JSON body.

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::Channel;

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
}
