//! `LogRow`, the one request log row on every edge: the log writer builds it from the core's
//! `RequestRecord` (`Repo::log_row`), diesel stores and reads it, and the admin API serves it as
//! is once [`LogRow::reveal`] has decrypted its key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::compat::{BigIntOrZero, Int32, TextOrEmpty};
use super::schema::request_logs;

/// One `request_logs` row (see the module's doc).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = request_logs)]
#[schema(as = RequestLog, description = "One request log row.")]
pub struct LogRow {
    pub id: String,
    #[serde(serialize_with = "serialize_time")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: NaiveDateTime,
    /// The group that served the request (the member, for aggregates).
    pub group_id: i64,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub group_name: String,
    /// The aggregate it came through, or 0.
    #[diesel(deserialize_as = BigIntOrZero)]
    pub parent_group_id: i64,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub parent_group_name: String,
    /// The upstream key in plain text (`failed-to-decrypt` when unreadable); stored encoded, as
    /// `api_keys` stores it.
    #[diesel(deserialize_as = TextOrEmpty)]
    pub key_value: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub key_hash: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub model: String,
    pub is_success: bool,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub source_ip: String,
    #[diesel(deserialize_as = Int32)]
    pub status_code: i32,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub request_path: String,
    #[serde(rename = "duration_ms")]
    pub duration: i64,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub error_message: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub user_agent: String,
    /// `retry` or `final`.
    #[diesel(deserialize_as = TextOrEmpty)]
    pub request_type: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub upstream_addr: String,
    pub is_stream: bool,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub request_body: String,
    /// Prompt tokens the upstream reported (cached ones included); null when not reported.
    pub input_tokens: Option<i64>,
    /// Generated tokens (reasoning included); null when not reported.
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: Option<i64>,
    /// Prompt tokens written to the provider's cache (Anthropic).
    pub cache_write_tokens: Option<i64>,
    /// Reasoning/thinking share of `output_tokens`.
    pub reasoning_tokens: Option<i64>,
    /// Which proxy key authenticated the request (`global #2 · 1a2b3c4d`), never the key.
    pub proxy_key: String,
}

impl LogRow {
    /// The row as the admin API serves it: the key decrypted (`failed-to-decrypt` when the
    /// stored value cannot be read, empty when the request never got a key).
    pub fn reveal(mut self, codec: &crate::crypto::KeyCodec) -> Self {
        if !self.key_value.is_empty() {
            self.key_value = codec
                .decode(&self.key_value)
                .map(|plain| plain.expose().to_string())
                .unwrap_or_else(|_| "failed-to-decrypt".into());
        }
        self
    }
}

fn serialize_time<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::models::rfc3339(t))
}
