//! Provider channels: how a request for one provider finds its stream flag and model, and how the
//! upstream key is put on it. One file per channel behind the [`Channel`] trait, whose methods
//! are the phases of a request that differ between providers.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod openai_response;

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use actix_web::http::Method;
use serde::Deserialize;

/// The fields of a JSON request body the proxy looks at; everything else is skipped unparsed.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct BodyProbe {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
}

impl BodyProbe {
    /// Reads `model` and `stream` from a JSON object body; anything else yields an empty probe.
    pub fn parse(body: &[u8]) -> Self {
        if body
            .first()
            .is_none_or(|b| !matches!(b, b'{' | b' ' | b'\n' | b'\r' | b'\t'))
        {
            return Self::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// What a channel needs to know about an inbound request.
pub struct InboundRequest<'a> {
    pub method: &'a Method,
    /// The upstream path (after `/proxy/{group}`), still percent-encoded.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a BodyProbe,
}

/// The phases of a proxied request that differ between providers.
pub trait Channel: Send + Sync {
    /// The channel type as stored on groups.
    fn name(&self) -> &'static str;

    /// True when the client asked for a streamed (SSE) reply: `Accept: text/event-stream`,
    /// `?stream=true`, or `"stream": true` in the body.
    fn is_stream(&self, req: &InboundRequest<'_>) -> bool {
        let accepts_sse = req
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        accepts_sse
            || url::form_urlencoded::parse(req.query.as_bytes())
                .any(|(k, v)| k == "stream" && v == "true")
            || req.body.stream == Some(true)
    }

    /// The model the client asked for, for logs and redirects.
    fn model(&self, req: &InboundRequest<'_>) -> Option<String> {
        req.body.model.clone()
    }

    /// True when the model lives in the URL path (`models/{model}:method`) rather than the body.
    fn model_in_path(&self, _path: &str) -> bool {
        false
    }

    /// True for calls that list models, whose replies model redirects rewrite.
    fn is_model_list(&self, req: &InboundRequest<'_>) -> bool {
        req.method == Method::GET
            && (req.path.ends_with("/v1/models")
                || req.path.ends_with("/v1beta/models")
                || req.path.contains("/v1beta/openai/v1/models"))
    }

    /// Puts the upstream key on the outgoing request (client credentials are already stripped).
    /// `target` is the full upstream URL without its query. May change the query (Gemini's `?key=`).
    fn inject_key(&self, target: &str, headers: &mut HeaderMap, query: &mut String, key: &str);

    /// The validation path used when a group sets none; empty for channels that ignore
    /// `validation_endpoint` (Gemini).
    fn default_validation_endpoint(&self) -> &'static str {
        ""
    }

    /// The request that checks whether a key works.
    fn validation_request(
        &self,
        base: &str,
        test_model: &str,
        validation_endpoint: &str,
        key: &str,
    ) -> ValidationRequest;
}

/// A key-validation request, ready to send.
#[derive(Debug)]
pub struct ValidationRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

/// The channel for a group's `channel_type`, or `None` when it is not supported.
pub fn for_type(channel_type: &str) -> Option<&'static dyn Channel> {
    match channel_type {
        "openai" => Some(&openai::OpenAi),
        "openai-response" => Some(&openai_response::OpenAiResponse),
        "gemini" => Some(&gemini::Gemini),
        "anthropic" => Some(&anthropic::Anthropic),
        _ => None,
    }
}

/// Channel types a group may use.
pub const CHANNEL_TYPES: [&str; 4] = ["openai", "openai-response", "gemini", "anthropic"];

/// Sets `Authorization: Bearer <key>`.
pub(crate) fn set_bearer(headers: &mut HeaderMap, key: &str) {
    match HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(value) => {
            headers.insert(AUTHORIZATION, value);
        }
        // A key with control characters cannot be sent; the upstream rejects the request
        // without credentials and the key is counted as failing.
        Err(_) => tracing::warn!("Upstream key contains characters not allowed in a header."),
    }
}

/// `{base}{endpoint}`, where an endpoint's own query string replaces the base's.
pub(crate) fn join_endpoint(base: &str, endpoint: &str) -> String {
    let base = base.split('?').next().unwrap_or(base).trim_end_matches('/');
    format!("{base}{endpoint}")
}

/// The validation endpoint a group really uses: its own, else its channel's default. Aggregate
/// members must agree on it.
pub fn effective_validation_endpoint(channel_type: &str, validation_endpoint: &str) -> String {
    let own = validation_endpoint.trim();
    if !own.is_empty() {
        return own.to_string();
    }
    for_type(channel_type)
        .map(|c| c.default_validation_endpoint().to_string())
        .unwrap_or_default()
}

/// JSON content type for validation requests.
pub(crate) fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        actix_web::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_model_and_stream_only() {
        let p = BodyProbe::parse(
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":true}"#,
        );
        assert_eq!(p.model.as_deref(), Some("gpt-4o"));
        assert_eq!(p.stream, Some(true));
        let empty = BodyProbe::parse(b"not json");
        assert!(empty.model.is_none() && empty.stream.is_none());
        assert!(BodyProbe::parse(b"").model.is_none());
    }

    #[test]
    fn every_listed_type_has_a_channel() {
        for t in CHANNEL_TYPES {
            assert_eq!(for_type(t).map(|c| c.name()), Some(t));
        }
        assert!(for_type("custom").is_none());
    }

    #[test]
    fn effective_validation_endpoints_fall_back_to_the_channel_default() {
        assert_eq!(
            effective_validation_endpoint("openai", ""),
            "/v1/chat/completions"
        );
        assert_eq!(
            effective_validation_endpoint("openai-response", ""),
            "/v1/responses"
        );
        assert_eq!(
            effective_validation_endpoint("anthropic", " "),
            "/v1/messages"
        );
        assert_eq!(effective_validation_endpoint("gemini", ""), "");
        assert_eq!(
            effective_validation_endpoint("openai", " /custom "),
            "/custom"
        );
    }

    #[test]
    fn validation_endpoint_query_replaces_base_query() {
        assert_eq!(
            join_endpoint("https://a/v1/?x=1", "/chat?y=2"),
            "https://a/v1/chat?y=2"
        );
    }
}
