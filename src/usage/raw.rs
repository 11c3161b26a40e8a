//! The usage object as upstreams send it: the union of every provider's field names, merged
//! field by field as a stream reports it in pieces (Anthropic's `message_start` then
//! `message_delta`, Gemini's running `usageMetadata`).

use serde::Deserialize;

/// A `details` object nested in an OpenAI usage.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Details {
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

/// Every usage field any supported provider reports. Unknown fields are ignored; a field of the
/// wrong type makes the whole object unreadable (its usage stays unknown).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RawUsage {
    // OpenAI chat / completions / embeddings.
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub prompt_tokens_details: Option<Details>,
    pub completion_tokens_details: Option<Details>,
    // OpenAI Responses and Anthropic.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub input_tokens_details: Option<Details>,
    pub output_tokens_details: Option<Details>,
    // Anthropic.
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    // Gemini.
    #[serde(rename = "promptTokenCount")]
    pub prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    pub candidates_token_count: Option<u64>,
    #[serde(rename = "totalTokenCount")]
    pub total_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    pub cached_content_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    pub thoughts_token_count: Option<u64>,
}

/// A count as stored (database columns are signed).
pub(super) fn count(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

fn merge_details(old: &mut Option<Details>, new: Option<Details>) {
    if let Some(new) = new {
        let d = old.get_or_insert_with(Details::default);
        d.cached_tokens = new.cached_tokens.or(d.cached_tokens);
        d.reasoning_tokens = new.reasoning_tokens.or(d.reasoning_tokens);
    }
}

impl RawUsage {
    /// Takes every field `newer` reports; the others keep their earlier value.
    pub fn merge(&mut self, newer: &RawUsage) {
        macro_rules! take {
            ($($f:ident),*) => { $( self.$f = newer.$f.or(self.$f); )* };
        }
        take!(
            prompt_tokens,
            completion_tokens,
            total_tokens,
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
            prompt_token_count,
            candidates_token_count,
            total_token_count,
            cached_content_token_count,
            thoughts_token_count
        );
        merge_details(&mut self.prompt_tokens_details, newer.prompt_tokens_details);
        merge_details(
            &mut self.completion_tokens_details,
            newer.completion_tokens_details,
        );
        merge_details(&mut self.input_tokens_details, newer.input_tokens_details);
        merge_details(&mut self.output_tokens_details, newer.output_tokens_details);
    }
}
