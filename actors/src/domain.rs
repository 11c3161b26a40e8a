//! Plain data shared by the actors and the adapters: groups, keys and their health.

use std::fmt;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Database id of a group.
pub type GroupId = i64;
/// Database id of an upstream API key.
pub type KeyId = i64;

/// An upstream API key in plain text. `Debug` and `Display` print only a masked form, and the
/// memory is zeroed on drop, so the secret cannot leak through a log line or a panic message.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl KeySecret {
    /// Wraps a plain-text key.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain text, for the one place that must send it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk-a…wxyz`-style mask: enough to tell keys apart in logs, never enough to use one.
    pub fn masked(&self) -> String {
        mask_secret(&self.0)
    }
}

/// Masks any secret for display: the first four and last four characters of long values, nothing
/// of short ones.
pub fn mask_secret(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySecret({})", self.masked())
    }
}

impl fmt::Display for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Drop for KeySecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Whether a key may be leased. GPT-Load stores `active` and `invalid`; `disabled` is an
/// operator's choice that only an operator undoes (validation and failures never touch it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Invalid,
    Disabled,
}

impl KeyStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Invalid => "invalid",
            KeyStatus::Disabled => "disabled",
        }
    }

    /// Parses the database spelling; anything unknown is treated as invalid so it is never leased.
    pub fn parse(value: &str) -> Self {
        match value {
            "active" => KeyStatus::Active,
            "disabled" => KeyStatus::Disabled,
            _ => KeyStatus::Invalid,
        }
    }

    /// Parses a status given by a client: exactly one of the database spellings.
    pub fn from_input(value: &str) -> Option<Self> {
        match value {
            "active" => Some(KeyStatus::Active),
            "invalid" => Some(KeyStatus::Invalid),
            "disabled" => Some(KeyStatus::Disabled),
            _ => None,
        }
    }
}

/// One upstream key as the pool needs it: decrypted once at load time.
#[derive(Clone, Debug)]
pub struct PoolKey {
    pub id: KeyId,
    pub group_id: GroupId,
    pub secret: KeySecret,
    pub status: KeyStatus,
    pub failure_count: i64,
}

/// One upstream base URL of a group with its weight (0 = disabled).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub url: String,
    #[serde(default)]
    pub weight: i64,
}

/// A header rule applied to upstream requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub action: String,
}

/// A group as stored, with its JSON columns parsed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub group_type: String,
    pub upstreams: serde_json::Value,
    pub channel_type: String,
    pub sort: i64,
    pub test_model: String,
    pub validation_endpoint: String,
    pub param_overrides: serde_json::Value,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub header_rules: Vec<HeaderRule>,
    pub model_redirect_rules: serde_json::Map<String, serde_json::Value>,
    pub model_redirect_strict: bool,
    pub proxy_keys: String,
    pub last_validated_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl GroupRecord {
    /// True for groups that forward to member groups instead of owning keys.
    pub fn is_aggregate(&self) -> bool {
        self.group_type == "aggregate"
    }

    /// Upstreams parsed from the stored JSON; malformed entries are skipped.
    pub fn parsed_upstreams(&self) -> Vec<Upstream> {
        match &self.upstreams {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|item| serde_json::from_value::<Upstream>(item.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Membership of a standard group in an aggregate group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubGroupLink {
    pub group_id: GroupId,
    pub sub_group_id: GroupId,
    pub weight: i64,
}

/// Whether a log row is an intermediate failed attempt or the request's final outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    Retry,
    Final,
}

impl RequestType {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Retry => "retry",
            RequestType::Final => "final",
        }
    }
}

/// One proxied attempt as it is logged (reference §3.5). The key travels in plain text inside a
/// masking type; the log sink stores it encrypted and hashed.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub id: String,
    pub timestamp: NaiveDateTime,
    pub group_id: GroupId,
    pub group_name: String,
    pub parent_group_id: GroupId,
    pub parent_group_name: String,
    pub key_id: Option<KeyId>,
    pub key: Option<std::sync::Arc<KeySecret>>,
    pub model: String,
    pub is_success: bool,
    pub source_ip: String,
    pub status_code: i32,
    pub request_path: String,
    pub duration_ms: i64,
    pub error_message: String,
    pub user_agent: String,
    pub request_type: RequestType,
    pub upstream_addr: String,
    pub is_stream: bool,
    pub request_body: String,
    /// Tokens the upstream reported for this attempt (all unknown for failed attempts).
    pub usage: TokenUsage,
    /// Non-secret identity of the proxy key that authenticated the request ("global #2 · 1a2b3c4d").
    pub proxy_key: String,
}

/// Tokens of one answered request, the same meaning on every channel. `None` = the upstream
/// did not report it (never guessed).
///
/// - `input`: every prompt token, cached ones included (Anthropic's uncached, cache-read and
///   cache-write counts added up).
/// - `output`: every generated token, reasoning/thinking included (Gemini's candidates plus
///   thoughts).
/// - `total`: as reported, else `input + output` when both are known.
/// - `cached`: prompt tokens read from a cache; `cache_write`: prompt tokens written to one
///   (Anthropic only); `reasoning`: the reasoning/thinking share of `output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub total: Option<i64>,
    pub cached: Option<i64>,
    pub cache_write: Option<i64>,
    pub reasoning: Option<i64>,
}

impl TokenUsage {
    /// True when the upstream reported anything at all.
    pub fn is_known(&self) -> bool {
        self.input.is_some() || self.output.is_some() || self.total.is_some()
    }

    /// Fills a missing total with `input + output` when both were reported.
    pub fn with_total(mut self) -> Self {
        if self.total.is_none() {
            if let (Some(i), Some(o)) = (self.input, self.output) {
                self.total = Some(i + o);
            }
        }
        self
    }
}

/// Splits a comma-separated credential list, trimming and dropping empties.
pub fn split_keys(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_in_full() {
        let key = KeySecret::new("sk-abcdefghijklmnop");
        assert_eq!(format!("{key:?}"), "KeySecret(sk-a****mnop)");
        assert_eq!(format!("{key}"), "sk-a****mnop");
        assert_eq!(KeySecret::new("short").masked(), "****");
    }

    #[test]
    fn key_lists_are_trimmed_and_deduped_of_empties() {
        assert_eq!(split_keys(" a, ,b,,c "), vec!["a", "b", "c"]);
        assert!(split_keys("").is_empty());
    }

    #[test]
    fn statuses_round_trip_their_database_spelling() {
        for status in [KeyStatus::Active, KeyStatus::Invalid, KeyStatus::Disabled] {
            assert_eq!(KeyStatus::parse(status.as_str()), status);
            assert_eq!(KeyStatus::from_input(status.as_str()), Some(status));
        }
        assert_eq!(KeyStatus::parse("bogus"), KeyStatus::Invalid);
        assert_eq!(KeyStatus::from_input("Active"), None);
    }
}

/// A key health change made by traffic on one node, for the other nodes of a cluster to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthChange {
    /// The key reached the failure threshold and left the rotation.
    Blacklisted { failure_count: i64 },
    /// The key rests for `for_ms` milliseconds from when the event is applied: for requests for
    /// `model` only (the model as sent upstream), or as a whole when there is none.
    CoolingDown {
        for_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// The key passed validation (or an operator ended its rest): active, no failures, no
    /// cooldown. Its cluster-wide failure count starts over too.
    Restored,
}
