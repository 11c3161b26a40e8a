//! Wire-format bodies of the mocked providers: success JSON, SSE events and error JSON.

use bytes::Bytes;

/// Error dialect of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Anthropic,
    Gemini,
}

/// Per-response values shared by every event of one reply.
pub(crate) struct Ctx {
    pub id: u64,
    pub created: u64,
    /// The model name, already encoded as a JSON string literal (quotes included).
    pub model: String,
    /// The client sent `stream_options.include_usage`: a streamed chat reply ends with a usage chunk.
    pub include_usage: bool,
}

impl Ctx {
    pub(crate) fn new(id: u64, model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ctx {
            id,
            created,
            model: json_str(model),
            include_usage: false,
        }
    }
}

/// Encodes `s` as a JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Text of content chunk `i`.
pub(crate) fn chunk_text(i: usize) -> String {
    format!("chunk-{i} ")
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

pub(crate) const NOT_FOUND: &str =
    r#"{"error":{"message":"not found","type":"invalid_request_error"}}"#;

const OPENAI_UNAUTHORIZED: &str = r#"{"error":{"message":"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
const OPENAI_RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for requests. Please try again later.","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#;
const OPENAI_SERVER_ERROR: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
const OPENAI_BAD_REQUEST: &str = r#"{"error":{"message":"We could not parse the JSON body of your request.","type":"invalid_request_error","param":null,"code":null}}"#;

const ANTHROPIC_UNAUTHORIZED: &str =
    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
const ANTHROPIC_RATE_LIMITED: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your per-minute rate limit."}}"#;
const ANTHROPIC_SERVER_ERROR: &str =
    r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#;
const ANTHROPIC_BAD_REQUEST: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"The request body is not valid JSON."}}"#;

const GEMINI_KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
const GEMINI_RATE_LIMITED: &str = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
const GEMINI_SERVER_ERROR: &str = r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#;
const GEMINI_BAD_REQUEST: &str = r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;

/// (status, body) for an unknown or rejected key.
pub(crate) fn unauthorized(flavor: Flavor) -> (u16, &'static str) {
    match flavor {
        Flavor::OpenAi => (401, OPENAI_UNAUTHORIZED),
        Flavor::Anthropic => (401, ANTHROPIC_UNAUTHORIZED),
        Flavor::Gemini => (400, GEMINI_KEY_INVALID),
    }
}

/// Body of a 429.
pub(crate) fn rate_limited(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenAi => OPENAI_RATE_LIMITED,
        Flavor::Anthropic => ANTHROPIC_RATE_LIMITED,
        Flavor::Gemini => GEMINI_RATE_LIMITED,
    }
}

/// Body of a 500.
pub(crate) fn server_error(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenAi => OPENAI_SERVER_ERROR,
        Flavor::Anthropic => ANTHROPIC_SERVER_ERROR,
        Flavor::Gemini => GEMINI_SERVER_ERROR,
    }
}

/// Body of a 400 for an unparsable request body.
pub(crate) fn bad_request(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenAi => OPENAI_BAD_REQUEST,
        Flavor::Anthropic => ANTHROPIC_BAD_REQUEST,
        Flavor::Gemini => GEMINI_BAD_REQUEST,
    }
}

// ---------------------------------------------------------------------------------------------
// Model lists
// ---------------------------------------------------------------------------------------------

pub(crate) const OPENAI_MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":0,"owned_by":"mock"},{"id":"gpt-4.1-nano","object":"model","created":0,"owned_by":"mock"}]}"#;

pub(crate) const ANTHROPIC_MODELS: &str = r#"{"data":[{"type":"model","id":"claude-3-5-haiku-latest","display_name":"Claude 3.5 Haiku","created_at":"2024-10-22T00:00:00Z"}],"has_more":false,"first_id":"claude-3-5-haiku-latest","last_id":"claude-3-5-haiku-latest"}"#;

pub(crate) const GEMINI_MODELS: &str = r#"{"models":[{"name":"models/gemini-2.0-flash","displayName":"Gemini 2.0 Flash","supportedGenerationMethods":["generateContent"]}]}"#;

// ---------------------------------------------------------------------------------------------
// OpenAI chat completions
// ---------------------------------------------------------------------------------------------

pub(crate) fn openai_chat(c: &Ctx) -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion","created":{created},"model":{model},"#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from mock"}},"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}}}"#
        ),
        id = c.id,
        created = c.created,
        model = c.model
    )
}

fn openai_chunk_json(c: &Ctx, delta: &str, finish: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion.chunk","created":{created},"model":{model},"#,
            r#""choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
        ),
        id = c.id,
        created = c.created,
        model = c.model,
        delta = delta,
        finish = finish
    )
}

pub(crate) fn openai_chat_chunk(c: &Ctx, i: usize) -> Bytes {
    let text = json_str(&chunk_text(i));
    let delta = if i == 0 {
        format!(r#"{{"role":"assistant","content":{text}}}"#)
    } else {
        format!(r#"{{"content":{text}}}"#)
    };
    sse_data(&openai_chunk_json(c, &delta, "null"))
}

pub(crate) fn openai_chat_final(c: &Ctx) -> Bytes {
    sse_data(&openai_chunk_json(c, "{}", r#""stop""#))
}

/// The usage chunk OpenAI sends last when asked with `stream_options.include_usage`: 1 prompt
/// token, one completion token per content chunk.
pub(crate) fn openai_usage_chunk(c: &Ctx, chunks: usize) -> Bytes {
    sse_data(&format!(
        concat!(
            r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion.chunk","created":{created},"model":{model},"#,
            r#""choices":[],"usage":{{"prompt_tokens":1,"completion_tokens":{chunks},"total_tokens":{total}}}}}"#
        ),
        id = c.id,
        created = c.created,
        model = c.model,
        chunks = chunks,
        total = chunks + 1
    ))
}

pub(crate) const OPENAI_DONE: &[u8] = b"data: [DONE]\n\n";

// ---------------------------------------------------------------------------------------------
// OpenAI responses
// ---------------------------------------------------------------------------------------------

/// A Responses object; a completed one reports 1 input token and `output_tokens` output tokens.
fn response_object(c: &Ctx, text: &str, status: &str, output_tokens: usize) -> String {
    let (output, usage) = if status == "completed" {
        (
            format!(
                r#"[{{"type":"message","id":"msg_mock","role":"assistant","content":[{{"type":"output_text","text":{}}}]}}]"#,
                json_str(text)
            ),
            format!(
                r#"{{"input_tokens":1,"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{output_tokens},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}}"#,
                output_tokens + 1
            ),
        )
    } else {
        ("[]".to_owned(), "null".to_owned())
    };
    format!(
        r#"{{"id":"resp_mock","object":"response","created_at":{created},"model":{model},"output":{output},"status":"{status}","usage":{usage}}}"#,
        created = c.created,
        model = c.model,
    )
}

pub(crate) fn responses(c: &Ctx) -> String {
    response_object(c, "Hello from mock", "completed", 3)
}

pub(crate) fn responses_created(c: &Ctx) -> Bytes {
    let data = format!(
        r#"{{"type":"response.created","response":{}}}"#,
        response_object(c, "", "in_progress", 0)
    );
    sse_event("response.created", &data)
}

pub(crate) fn responses_delta(i: usize) -> Bytes {
    let data = format!(
        r#"{{"type":"response.output_text.delta","item_id":"msg_mock","output_index":0,"content_index":0,"delta":{}}}"#,
        json_str(&chunk_text(i))
    );
    sse_event("response.output_text.delta", &data)
}

pub(crate) fn responses_completed(c: &Ctx, chunks: usize) -> Bytes {
    let text: String = (0..chunks).map(chunk_text).collect();
    let data = format!(
        r#"{{"type":"response.completed","response":{}}}"#,
        response_object(c, &text, "completed", chunks)
    );
    sse_event("response.completed", &data)
}

// ---------------------------------------------------------------------------------------------
// Anthropic messages
// ---------------------------------------------------------------------------------------------

pub(crate) fn anthropic_message(c: &Ctx) -> String {
    format!(
        concat!(
            r#"{{"id":"msg_mock","type":"message","role":"assistant","model":{model},"#,
            r#""content":[{{"type":"text","text":"Hello from mock"}}],"stop_reason":"end_turn","stop_sequence":null,"#,
            r#""usage":{{"input_tokens":1,"output_tokens":3}}}}"#
        ),
        model = c.model
    )
}

pub(crate) fn anthropic_message_start(c: &Ctx) -> Bytes {
    let data = format!(
        concat!(
            r#"{{"type":"message_start","message":{{"id":"msg_mock","type":"message","role":"assistant","#,
            r#""model":{model},"content":[],"stop_reason":null,"stop_sequence":null,"#,
            r#""usage":{{"input_tokens":1,"output_tokens":1}}}}}}"#
        ),
        model = c.model
    );
    sse_event("message_start", &data)
}

pub(crate) fn anthropic_content_block_start() -> Bytes {
    sse_event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    )
}

pub(crate) fn anthropic_ping() -> Bytes {
    sse_event("ping", r#"{"type":"ping"}"#)
}

pub(crate) fn anthropic_delta(i: usize) -> Bytes {
    let data = format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
        json_str(&chunk_text(i))
    );
    sse_event("content_block_delta", &data)
}

pub(crate) fn anthropic_content_block_stop() -> Bytes {
    sse_event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    )
}

pub(crate) fn anthropic_message_delta(chunks: usize) -> Bytes {
    let data = format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{chunks}}}}}"#
    );
    sse_event("message_delta", &data)
}

pub(crate) fn anthropic_message_stop() -> Bytes {
    sse_event("message_stop", r#"{"type":"message_stop"}"#)
}

// ---------------------------------------------------------------------------------------------
// Gemini native
// ---------------------------------------------------------------------------------------------

fn gemini_object(c: &Ctx, text: &str, finish: bool) -> String {
    let finish = if finish {
        r#","finishReason":"STOP""#
    } else {
        ""
    };
    format!(
        concat!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":{text}}}]}}{finish},"index":0}}],"#,
            r#""usageMetadata":{{"promptTokenCount":1,"candidatesTokenCount":3,"totalTokenCount":4}},"#,
            r#""modelVersion":{model}}}"#
        ),
        text = json_str(text),
        finish = finish,
        model = c.model
    )
}

pub(crate) fn gemini_generate(c: &Ctx) -> String {
    gemini_object(c, "Hello from mock", true)
}

/// One streamed Gemini object; `text` is `None` for an empty closing chunk.
pub(crate) fn gemini_chunk_json(c: &Ctx, i: Option<usize>, last: bool) -> String {
    let text = i.map(chunk_text).unwrap_or_default();
    gemini_object(c, &text, last)
}

// ---------------------------------------------------------------------------------------------
// SSE framing
// ---------------------------------------------------------------------------------------------

/// `data: <json>\n\n`
pub(crate) fn sse_data(json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// `event: <name>\ndata: <json>\n\n`
pub(crate) fn sse_event(name: &str, json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + name.len() + 16);
    s.push_str("event: ");
    s.push_str(name);
    s.push_str("\ndata: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("invalid JSON {e}: {s}"))
    }

    fn sse_json(b: &Bytes) -> serde_json::Value {
        let s = std::str::from_utf8(b).unwrap();
        assert!(s.ends_with("\n\n"), "{s:?}");
        let data = s.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        parse(data)
    }

    #[test]
    fn all_constant_bodies_are_json() {
        for s in [
            NOT_FOUND,
            OPENAI_UNAUTHORIZED,
            OPENAI_RATE_LIMITED,
            OPENAI_SERVER_ERROR,
            OPENAI_BAD_REQUEST,
            ANTHROPIC_UNAUTHORIZED,
            ANTHROPIC_RATE_LIMITED,
            ANTHROPIC_SERVER_ERROR,
            ANTHROPIC_BAD_REQUEST,
            GEMINI_KEY_INVALID,
            GEMINI_RATE_LIMITED,
            GEMINI_SERVER_ERROR,
            GEMINI_BAD_REQUEST,
            OPENAI_MODELS,
            ANTHROPIC_MODELS,
            GEMINI_MODELS,
        ] {
            parse(s);
        }
    }

    #[test]
    fn generated_bodies_are_json() {
        let c = Ctx::new(7, "m\"odel");
        let v = parse(&openai_chat(&c));
        assert_eq!(v["model"], "m\"odel");
        assert_eq!(v["id"], "chatcmpl-mock-7");
        assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock");
        let v = sse_json(&openai_chat_chunk(&c, 0));
        assert_eq!(v["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(v["choices"][0]["delta"]["content"], "chunk-0 ");
        assert!(v["choices"][0]["finish_reason"].is_null());
        let v = sse_json(&openai_chat_final(&c));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(parse(&responses(&c))["usage"]["total_tokens"], 4);
        let v = sse_json(&openai_usage_chunk(&c, 3));
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(v["choices"].as_array().map(Vec::len), Some(0));
        sse_json(&responses_created(&c));
        assert_eq!(sse_json(&responses_delta(2))["delta"], "chunk-2 ");
        let v = sse_json(&responses_completed(&c, 2));
        assert_eq!(
            v["response"]["output"][0]["content"][0]["text"],
            "chunk-0 chunk-1 "
        );
        parse(&anthropic_message(&c));
        for b in [
            anthropic_message_start(&c),
            anthropic_content_block_start(),
            anthropic_ping(),
            anthropic_delta(1),
            anthropic_content_block_stop(),
            anthropic_message_delta(3),
            anthropic_message_stop(),
        ] {
            let v = sse_json(&b);
            let s = std::str::from_utf8(&b).unwrap();
            let event = s.lines().next().unwrap().strip_prefix("event: ").unwrap();
            assert_eq!(v["type"], event);
        }
        let v = parse(&gemini_generate(&c));
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        let v = parse(&gemini_chunk_json(&c, Some(1), false));
        assert!(v["candidates"][0].get("finishReason").is_none());
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            "chunk-1 "
        );
    }
}
