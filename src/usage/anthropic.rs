//! Anthropic Messages: `usage.input_tokens` counts only uncached prompt tokens, so the prompt
//! total adds `cache_creation_input_tokens` and `cache_read_input_tokens` (streams report input in
//! `message_start` and the final output count in the last `message_delta`). Anthropic sends no
//! total: it becomes input + output when both are known.

use super::raw::{count, RawUsage};
use super::Usage;

pub(super) fn normalise(raw: &RawUsage) -> Usage {
    let uncached = count(raw.input_tokens);
    let written = count(raw.cache_creation_input_tokens);
    let read = count(raw.cache_read_input_tokens);
    Usage {
        input: uncached.map(|u| u + written.unwrap_or(0) + read.unwrap_or(0)),
        output: count(raw.output_tokens),
        total: None,
        cached: read,
        cache_write: written,
        reasoning: None,
    }
}
