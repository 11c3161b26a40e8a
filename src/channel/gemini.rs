//! The `gemini` channel: `?key=` on native paths, Bearer on the OpenAI-compatible `v1beta/openai`
//! paths; the model sits in the path (`models/{model}:generateContent`), and
//! `:streamGenerateContent` streams.

use actix_web::http::header::HeaderMap;
use serde_json::json;

use super::{json_headers, set_bearer, Channel, InboundRequest, ValidationRequest};

/// Google's Gemini API.
pub struct Gemini;

/// True on the OpenAI-compatible surface, which takes Bearer keys and JSON-body models.
pub fn is_openai_compatible(path: &str) -> bool {
    path.contains("v1beta/openai")
}

/// The model segment of a native path: what follows `models/`, up to `:`.
pub fn path_model(path: &str) -> Option<&str> {
    let rest = &path[path.find("models/")? + "models/".len()..];
    let model = rest.split([':', '/', '?']).next().unwrap_or("");
    (!model.is_empty()).then_some(model)
}

impl Channel for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn is_stream(&self, req: &InboundRequest<'_>) -> bool {
        req.path.ends_with(":streamGenerateContent")
            || req
                .headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/event-stream"))
            || url::form_urlencoded::parse(req.query.as_bytes())
                .any(|(k, v)| k == "stream" && v == "true")
            || req.body.stream == Some(true)
    }

    fn model(&self, req: &InboundRequest<'_>) -> Option<String> {
        path_model(req.path)
            .map(str::to_string)
            .or_else(|| req.body.model.clone())
    }

    fn model_in_path(&self, path: &str) -> bool {
        !is_openai_compatible(path) && path_model(path).is_some()
    }

    fn inject_key(&self, path: &str, headers: &mut HeaderMap, query: &mut String, key: &str) {
        if is_openai_compatible(path) {
            set_bearer(headers, key);
            return;
        }
        let encoded: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("key=");
        query.push_str(&encoded);
    }

    fn validation_request(
        &self,
        base: &str,
        test_model: &str,
        _endpoint: &str,
        key: &str,
    ) -> ValidationRequest {
        let base = base.split('?').next().unwrap_or(base).trim_end_matches('/');
        let encoded: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        ValidationRequest {
            url: format!("{base}/v1beta/models/{test_model}:generateContent?key={encoded}"),
            headers: json_headers(),
            body: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_comes_from_the_path() {
        assert_eq!(
            path_model("/v1beta/models/gemini-2.0-flash:generateContent"),
            Some("gemini-2.0-flash")
        );
        assert_eq!(path_model("/v1beta/models"), None);
        assert_eq!(path_model("/v1beta/openai/chat/completions"), None);
    }

    #[test]
    fn key_goes_in_the_query_on_native_paths_and_bearer_on_openai_paths() {
        let mut headers = HeaderMap::new();
        let mut query = "alt=sse".to_string();
        Gemini.inject_key(
            "/v1beta/models/m:streamGenerateContent",
            &mut headers,
            &mut query,
            "AIza k+/",
        );
        assert_eq!(query, "alt=sse&key=AIza+k%2B%2F");
        assert!(headers.get("authorization").is_none());
        let mut query = String::new();
        Gemini.inject_key(
            "/v1beta/openai/chat/completions",
            &mut headers,
            &mut query,
            "AIzaK",
        );
        assert_eq!(query, "");
        assert_eq!(headers.get("authorization").unwrap(), "Bearer AIzaK");
    }
}
