//! Provider channels: how a request for one provider finds its stream flag and model and how the
//! upstream key is put on it. One file per channel behind the [`Channel`] trait.

pub mod openai;

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use bytes::Bytes;
use serde::Deserialize;

/// The fields of a JSON request body the proxy looks at; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
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
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a BodyProbe,
}

/// The phases of a proxied request that differ between providers.
pub trait Channel: Send + Sync {
    /// The channel type as stored on groups.
    fn name(&self) -> &'static str;

    /// True when the client asked for a streamed (SSE) reply.
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

    /// The model the client asked for, for logs.
    fn model(&self, req: &InboundRequest<'_>) -> Option<String> {
        req.body.model.clone()
    }

    /// Puts the upstream key on the outgoing request (client credentials are already stripped).
    /// May change the query (Gemini's `?key=`).
    fn inject_key(&self, headers: &mut HeaderMap, query: &mut String, key: &str);

    /// The validation path used when a group sets none (empty for channels that ignore it).
    fn default_validation_endpoint(&self) -> &'static str;

    /// The request that checks whether `key` works: sent to `upstream_base` (no trailing `/`)
    /// with the group's test model and validation endpoint (empty = the channel's default).
    fn validation_request(
        &self,
        upstream_base: &str,
        test_model: &str,
        validation_endpoint: &str,
        key: &str,
    ) -> ValidationRequest;
}

/// A key-validation request, ready to send.
#[derive(Debug)]
pub struct ValidationRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `{base}{endpoint}`, where the endpoint may carry its own query string, which replaces the
/// base URL's query.
pub fn join_endpoint(upstream_base: &str, endpoint: &str) -> String {
    let base = upstream_base.split('?').next().unwrap_or_default();
    format!("{}{}", base.trim_end_matches('/'), endpoint)
}

/// The validation endpoint a group really uses: its own, else its channel's default.
pub fn effective_validation_endpoint(channel_type: &str, validation_endpoint: &str) -> String {
    if !validation_endpoint.trim().is_empty() {
        return validation_endpoint.trim().to_string();
    }
    for_type(channel_type)
        .map(|c| c.default_validation_endpoint().to_string())
        .unwrap_or_default()
}

/// The channel for a group's `channel_type`, or `None` when it is not supported.
pub fn for_type(channel_type: &str) -> Option<&'static dyn Channel> {
    match channel_type {
        "openai" => Some(&openai::OpenAi),
        _ => None,
    }
}

/// Channel types a group may use.
pub const CHANNEL_TYPES: [&str; 1] = ["openai"];

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
    fn endpoints_join_and_replace_the_query() {
        assert_eq!(
            join_endpoint("https://x/v1beta/openai/", "/chat/completions"),
            "https://x/v1beta/openai/chat/completions"
        );
        assert_eq!(join_endpoint("https://x?a=1", "/v?b=2"), "https://x/v?b=2");
        assert_eq!(
            effective_validation_endpoint("openai", ""),
            "/v1/chat/completions"
        );
        assert_eq!(
            effective_validation_endpoint("openai", " /custom "),
            "/custom"
        );
    }
}
