//! OpenAI Responses: `usage.input_tokens`, `output_tokens`, `total_tokens` with
//! `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens` (streams
//! carry it in `response.completed`).

use super::raw::{count, RawUsage};
use super::Usage;

pub(super) fn normalise(raw: &RawUsage) -> Usage {
    Usage {
        input: count(raw.input_tokens),
        output: count(raw.output_tokens),
        total: count(raw.total_tokens),
        cached: count(raw.input_tokens_details.and_then(|d| d.cached_tokens)),
        cache_write: None,
        reasoning: count(raw.output_tokens_details.and_then(|d| d.reasoning_tokens)),
    }
}
