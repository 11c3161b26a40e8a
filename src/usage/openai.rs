//! OpenAI chat completions, completions and embeddings: `usage.prompt_tokens`,
//! `completion_tokens`, `total_tokens` and their `*_details` (streams carry it in the last chunk
//! when the client asked for `stream_options.include_usage`).

use super::raw::{count, RawUsage};
use super::Usage;

pub(super) fn normalise(raw: &RawUsage) -> Usage {
    Usage {
        input: count(raw.prompt_tokens),
        output: count(raw.completion_tokens),
        total: count(raw.total_tokens),
        cached: count(raw.prompt_tokens_details.and_then(|d| d.cached_tokens)),
        cache_write: None,
        reasoning: count(
            raw.completion_tokens_details
                .and_then(|d| d.reasoning_tokens),
        ),
    }
}
