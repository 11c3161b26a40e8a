//! Realistic payloads of each provider, fed whole, split at every byte and compressed.

use std::io::Write;

use super::*;

fn scan_chunks(wire: Wire, encoding: Option<&str>, chunks: &[&[u8]]) -> Usage {
    let mut s = UsageScanner::new(wire, encoding);
    for c in chunks {
        s.feed(c);
    }
    s.finish()
}

/// Scans `body` whole, split in two at every offset, and one byte at a time, and checks each
/// gives the same answer.
fn scan_every_way(wire: Wire, body: &[u8]) -> Usage {
    let whole = scan_chunks(wire, None, &[body]);
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(
            scan_chunks(wire, None, &[a, b]),
            whole,
            "split at {cut}: {:?} | {:?}",
            String::from_utf8_lossy(&a[a.len().saturating_sub(20)..]),
            String::from_utf8_lossy(&b[..b.len().min(20)])
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(scan_chunks(wire, None, &bytes), whole, "byte by byte");
    whole
}

fn usage(input: i64, output: i64, total: i64) -> Usage {
    Usage {
        input: Some(input),
        output: Some(output),
        total: Some(total),
        ..Usage::default()
    }
}

const OPENAI_CHAT: &str = r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Here is JSON: {\"usage\": {\"prompt_tokens\": 999}} and a path C:\\","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":12,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;

fn openai_chat_expected() -> Usage {
    Usage {
        cached: Some(1024),
        reasoning: Some(12),
        ..usage(1117, 46, 1163)
    }
}

#[test]
fn openai_chat_body_skips_usage_inside_strings() {
    assert_eq!(
        scan_every_way(Wire::OpenAiChat, OPENAI_CHAT.as_bytes()),
        openai_chat_expected()
    );
}

fn openai_stream(include_usage: bool) -> String {
    let head = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini","system_fingerprint":"fp_1","#;
    let tail = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let mut out = String::new();
    for delta in [
        r#"{"role":"assistant","content":"","refusal":null}"#,
        r#"{"content":"Hello"}"#,
        r#"{"content":" \"usage\":{\"prompt_tokens\":5}"}"#,
    ] {
        out += &format!(
            "data: {head}\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":null}}]{tail}}}\n\n"
        );
    }
    out += &format!(
        "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]{tail}}}\n\n"
    );
    if include_usage {
        out += &format!("data: {head}\"choices\":[],\"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n");
    }
    out + "data: [DONE]\n\n"
}

#[test]
fn openai_chat_stream_reads_the_include_usage_chunk() {
    let got = scan_every_way(Wire::OpenAiChat, openai_stream(true).as_bytes());
    assert_eq!(
        got,
        Usage {
            cached: Some(0),
            reasoning: Some(0),
            ..usage(19, 10, 29)
        }
    );
}

#[test]
fn openai_chat_stream_without_include_usage_is_unknown() {
    let got = scan_every_way(Wire::OpenAiChat, openai_stream(false).as_bytes());
    assert_eq!(got, Usage::default());
    assert!(!got.is_known());
}

#[test]
fn large_embeddings_body_in_small_chunks_keeps_no_copy() {
    let floats: Vec<String> = (0..40_000)
        .map(|i| format!("{:.6}", i as f64 / 1e5))
        .collect();
    let body = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{}]}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":8,"total_tokens":8}}}}"#,
        floats.join(",")
    );
    assert!(body.len() > 300_000);
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(4096).collect();
    let mut s = UsageScanner::new(Wire::OpenAiChat, None);
    for c in &chunks {
        s.feed(c);
        assert!(s.held_bytes() < 64, "held {} bytes", s.held_bytes());
    }
    assert_eq!(
        s.finish(),
        Usage {
            input: Some(8),
            total: Some(8),
            ..Usage::default()
        }
    );
}

const RESPONSES_BODY: &str = r#"{"id":"resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41","object":"response","created_at":1741476777,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"o4-mini-2025-04-16","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"The image depicts a scenic landscape.","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"medium","summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":328,"input_tokens_details":{"cached_tokens":128},"output_tokens":52,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":380},"user":null,"metadata":{}}"#;

fn responses_expected() -> Usage {
    Usage {
        cached: Some(128),
        reasoning: Some(20),
        ..usage(328, 52, 380)
    }
}

#[test]
fn responses_body() {
    assert_eq!(
        scan_every_way(Wire::OpenAiResponses, RESPONSES_BODY.as_bytes()),
        responses_expected()
    );
}

#[test]
fn responses_stream_reads_response_completed() {
    let in_progress =
        r#"{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}"#;
    let stream = format!(
        "event: response.created\ndata: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{in_progress}}}\n\n\
         event: response.in_progress\ndata: {{\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{in_progress}}}\n\n\
         event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"The \\\"usage\\\": 3\"}}\n\n\
         event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{RESPONSES_BODY}}}\n\n"
    );
    assert_eq!(
        scan_every_way(Wire::OpenAiResponses, stream.as_bytes()),
        responses_expected()
    );
}

const ANTHROPIC_BODY: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":503,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"}}"#;

#[test]
fn anthropic_body_adds_cache_reads_and_writes_to_input() {
    assert_eq!(
        scan_every_way(Wire::Anthropic, ANTHROPIC_BODY.as_bytes()),
        Usage {
            cached: Some(2000),
            cache_write: Some(100),
            ..usage(4195, 503, 4698)
        }
    );
}

#[test]
fn anthropic_stream_merges_message_start_and_last_message_delta() {
    let stream = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-3-5-haiku-latest","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \"usage\":{}"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    assert_eq!(
        scan_every_way(Wire::Anthropic, stream.as_bytes()),
        Usage {
            cached: Some(10),
            cache_write: Some(0),
            ..usage(35, 15, 50)
        }
    );
}

fn gemini_object(text: &str, usage: &str) -> String {
    format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}},"index":0}}],"usageMetadata":{usage},"modelVersion":"gemini-2.5-flash","responseId":"mEVsaN6yA9Ofz7IPl_ub4Ag"}}"#
    )
}

const GEMINI_FINAL_USAGE: &str = r#"{"promptTokenCount":8,"candidatesTokenCount":120,"totalTokenCount":228,"cachedContentTokenCount":4,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}],"thoughtsTokenCount":100}"#;

fn gemini_expected() -> Usage {
    Usage {
        cached: Some(4),
        reasoning: Some(100),
        ..usage(8, 220, 228)
    }
}

#[test]
fn gemini_body_counts_thoughts_as_output() {
    let body = gemini_object("Hi", GEMINI_FINAL_USAGE);
    assert_eq!(
        scan_every_way(Wire::Gemini, body.as_bytes()),
        gemini_expected()
    );
}

#[test]
fn gemini_sse_and_json_array_streams_take_the_last_usage() {
    let early = r#"{"promptTokenCount":8,"totalTokenCount":8}"#;
    let sse = format!(
        "data: {}\r\n\r\ndata: {}\r\n\r\n",
        gemini_object("Hel", early),
        gemini_object("lo", GEMINI_FINAL_USAGE)
    );
    assert_eq!(
        scan_every_way(Wire::Gemini, sse.as_bytes()),
        gemini_expected()
    );
    let array = format!(
        "[{}\r\n,\r\n{}]",
        gemini_object("Hel", early),
        gemini_object("lo", GEMINI_FINAL_USAGE)
    );
    assert_eq!(
        scan_every_way(Wire::Gemini, array.as_bytes()),
        gemini_expected()
    );
}

#[test]
fn pretty_printed_bodies_are_read() {
    let body = "{\n  \"usage\" :\n {\n \"prompt_tokens\": 3,\n \"completion_tokens\": 4\n }\n}";
    assert_eq!(
        scan_every_way(Wire::OpenAiChat, body.as_bytes()),
        usage(3, 4, 7)
    );
}

#[test]
fn absent_or_foreign_usage_stays_unknown() {
    for body in [
        r#"{"choices":[]}"#,
        r#"{"usage":null}"#,
        r#"{"usage":"high"}"#,
        r#"{"usage":{"prompt_tokens":-1}}"#,
        r#"{"usage":{"prompt_tokens":1.5}}"#,
        r#"{"usage":{"prompt_tokens":"#,
        r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
    ] {
        assert_eq!(
            scan_every_way(Wire::OpenAiChat, body.as_bytes()),
            Usage::default(),
            "{body}"
        );
    }
}

#[test]
fn an_oversized_cut_value_is_given_up() {
    let mut s = UsageScanner::new(Wire::OpenAiChat, None);
    s.feed(br#"{"usage":{"prompt_tokens":3,"x":""#);
    s.feed(&vec![b'a'; 70 << 10]);
    s.feed(br#""}}"#);
    assert_eq!(s.finish(), Usage::default());
    assert_eq!(s.held_bytes(), 0);
}

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

#[test]
fn gzip_and_deflate_bodies_are_inflated_on_the_fly() {
    for kind in ["gzip", "deflate"] {
        let packed = compress(kind, OPENAI_CHAT.as_bytes());
        let whole = scan_chunks(Wire::OpenAiChat, Some(kind), &[&packed]);
        assert_eq!(whole, openai_chat_expected(), "{kind}");
        for cut in (0..packed.len()).step_by(7) {
            let (a, b) = packed.split_at(cut);
            assert_eq!(
                scan_chunks(Wire::OpenAiChat, Some(kind), &[a, b]),
                whole,
                "{kind} cut {cut}"
            );
        }
        let stream = compress(kind, openai_stream(true).as_bytes());
        let chunks: Vec<&[u8]> = stream.chunks(5).collect();
        assert!(scan_chunks(Wire::OpenAiChat, Some(kind), &chunks).is_known());
    }
}

#[test]
fn a_gzip_bomb_is_inflated_in_small_steps() {
    let mut plain = vec![b' '; 20 << 20];
    plain.extend_from_slice(br#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#);
    let packed = compress("gzip", &plain);
    assert!(packed.len() < 100 << 10);
    let mut s = UsageScanner::new(Wire::OpenAiChat, Some("gzip"));
    s.feed(&packed);
    assert_eq!(s.finish(), usage(1, 2, 3));
}

#[test]
fn unreadable_encodings_and_corrupt_data_leave_usage_unknown() {
    let plain = OPENAI_CHAT.as_bytes();
    assert_eq!(
        scan_chunks(Wire::OpenAiChat, Some("br"), &[plain]),
        Usage::default()
    );
    assert_eq!(
        scan_chunks(Wire::OpenAiChat, Some("zstd"), &[plain]),
        Usage::default()
    );
    assert_eq!(
        scan_chunks(Wire::OpenAiChat, Some("gzip"), &[plain]),
        Usage::default()
    );
    assert_eq!(
        scan_chunks(Wire::OpenAiChat, Some("identity"), &[plain]),
        openai_chat_expected()
    );
}

#[test]
fn wire_follows_channel_and_path() {
    assert_eq!(
        Wire::detect("openai", "/v1/chat/completions"),
        Wire::OpenAiChat
    );
    assert_eq!(
        Wire::detect("openai", "/v1/responses"),
        Wire::OpenAiResponses
    );
    assert_eq!(
        Wire::detect("openai-response", "/v1/responses"),
        Wire::OpenAiResponses
    );
    assert_eq!(Wire::detect("anthropic", "/v1/messages"), Wire::Anthropic);
    assert_eq!(
        Wire::detect("gemini", "/v1beta/models/gemini-2.0-flash:generateContent"),
        Wire::Gemini
    );
    assert_eq!(
        Wire::detect("gemini", "/v1beta/openai/chat/completions"),
        Wire::OpenAiChat
    );
    assert_eq!(
        Wire::detect("gemini", "/chat/completions"),
        Wire::OpenAiChat
    );
}

#[test]
fn field_names_win_over_a_wrong_wire_guess() {
    let chat = br#"{"usage":{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}}"#;
    assert_eq!(scan_chunks(Wire::Gemini, None, &[chat]), usage(2, 5, 7));
    let gemini =
        br#"{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":5,"totalTokenCount":7}}"#;
    assert_eq!(
        scan_chunks(Wire::OpenAiChat, None, &[gemini]),
        usage(2, 5, 7)
    );
    let anthropic =
        br#"{"usage":{"input_tokens":2,"output_tokens":5,"cache_read_input_tokens":3}}"#;
    assert_eq!(
        scan_chunks(Wire::OpenAiResponses, None, &[anthropic]).input,
        Some(5)
    );
}
