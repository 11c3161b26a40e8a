//! Gemini native: `usageMetadata.promptTokenCount`, `candidatesTokenCount` (which leaves out
//! thinking), `thoughtsTokenCount`, `cachedContentTokenCount`, `totalTokenCount`; every streamed
//! chunk carries the running figures, the last one the final ones.

use super::raw::{count, RawUsage};
use super::Usage;

pub(super) fn normalise(raw: &RawUsage) -> Usage {
    let thoughts = count(raw.thoughts_token_count);
    Usage {
        input: count(raw.prompt_token_count),
        output: count(raw.candidates_token_count).map(|c| c + thoughts.unwrap_or(0)),
        total: count(raw.total_token_count),
        cached: count(raw.cached_content_token_count),
        cache_write: None,
        reasoning: thoughts,
    }
}
