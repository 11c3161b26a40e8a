//! Token usage read from the responses the proxy relays: one normaliser per wire format
//! (OpenAI chat/completions/embeddings, OpenAI Responses, Anthropic, Gemini) behind one
//! streaming scanner that sees every relayed chunk and keeps only a few bytes of state.

mod anthropic;
mod gemini;
mod openai;
mod raw;
mod responses;
mod scanner;

pub use gpt_load_actors::domain::TokenUsage as Usage;
pub use raw::RawUsage;
pub use scanner::UsageScanner;

/// The wire format of an answer, which decides how its usage fields are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions, legacy completions and embeddings (also Gemini's OpenAI surface).
    OpenAiChat,
    /// OpenAI Responses API.
    OpenAiResponses,
    /// Anthropic Messages API.
    Anthropic,
    /// Gemini's native API.
    Gemini,
}

impl Wire {
    /// The format spoken by a channel on an upstream path.
    pub fn detect(channel: &str, path: &str) -> Wire {
        match channel {
            "anthropic" => Wire::Anthropic,
            "gemini" if path.contains("/openai/") || path.ends_with("/chat/completions") => {
                Wire::OpenAiChat
            }
            "gemini" => Wire::Gemini,
            "openai-response" => Wire::OpenAiResponses,
            _ if path.contains("/responses") => Wire::OpenAiResponses,
            _ => Wire::OpenAiChat,
        }
    }

    /// Normalises what the upstream reported. The field names decide the format when they can
    /// (a Gemini group may serve its OpenAI surface on any path); this wire breaks the tie
    /// between Responses and Anthropic, which share `input_tokens`/`output_tokens`.
    pub fn normalise(self, raw: &RawUsage) -> Usage {
        let usage = match self.by_fields(raw) {
            Wire::OpenAiChat => openai::normalise(raw),
            Wire::OpenAiResponses => responses::normalise(raw),
            Wire::Anthropic => anthropic::normalise(raw),
            Wire::Gemini => gemini::normalise(raw),
        };
        usage.with_total()
    }
}

impl Wire {
    fn by_fields(self, raw: &RawUsage) -> Wire {
        let gemini = raw.prompt_token_count.is_some()
            || raw.candidates_token_count.is_some()
            || raw.total_token_count.is_some();
        let chat = raw.prompt_tokens.is_some() || raw.completion_tokens.is_some();
        let anthropic =
            raw.cache_creation_input_tokens.is_some() || raw.cache_read_input_tokens.is_some();
        let responses = raw.input_tokens_details.is_some() || raw.output_tokens_details.is_some();
        if gemini {
            Wire::Gemini
        } else if chat {
            Wire::OpenAiChat
        } else if anthropic || self == Wire::Anthropic {
            Wire::Anthropic
        } else if responses || raw.input_tokens.is_some() || raw.output_tokens.is_some() {
            Wire::OpenAiResponses
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests;
