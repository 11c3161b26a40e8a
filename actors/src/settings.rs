//! The system settings: their definitions, validation, and the effective config of a group
//! (compiled defaults, overlaid by stored values, overlaid by the group's overrides).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::key_state::{HealthPolicy, RestScope};
use crate::status_codes::StatusCodeSet;

/// The type of a setting's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingKind {
    Int,
    Bool,
    Str,
}

impl SettingKind {
    /// The spelling used by the settings API.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKind::Int => "int",
            SettingKind::Bool => "bool",
            SettingKind::Str => "string",
        }
    }
}

/// One setting's definition.
#[derive(Clone, Copy, Debug)]
pub struct SettingDef {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    pub kind: SettingKind,
    pub default: &'static str,
    pub min: Option<i64>,
    pub required: bool,
    pub group_overridable: bool,
}

const BASIC: &str = "Basic";
const REQUEST: &str = "Request Settings";
const KEY: &str = "Key Configuration";

macro_rules! def {
    ($key:literal, $name:literal, $desc:literal, $cat:expr, $kind:ident, $default:literal, $min:expr, $req:literal, $ovr:literal) => {
        SettingDef {
            key: $key,
            name: $name,
            description: $desc,
            category: $cat,
            kind: SettingKind::$kind,
            default: $default,
            min: $min,
            required: $req,
            group_overridable: $ovr,
        }
    };
}

/// All settings, in the order the API and UI list them.
pub const SETTINGS: [SettingDef; 28] = [
    def!(
        "app_url",
        "Project URL",
        "Base URL of the project, used to build group endpoint addresses.",
        BASIC,
        Str,
        "http://localhost:3001",
        None,
        true,
        false
    ),
    def!(
        "proxy_keys",
        "Global Proxy Keys",
        "Global proxy keys for accessing all groups, comma separated.",
        BASIC,
        Str,
        "",
        None,
        true,
        false
    ),
    def!(
        "request_log_retention_days",
        "Log Retention Days",
        "Days to keep request logs; 0 keeps them forever.",
        BASIC,
        Int,
        "7",
        Some(0),
        false,
        false
    ),
    def!(
        "request_log_write_interval_minutes",
        "Log Write Interval",
        "Upper bound in minutes on how long a request log waits before it is written (the server writes within REQUEST_LOG_MAX_DELAY_MS, 1 s by default, anyway); 0 writes at once.",
        BASIC,
        Int,
        "1",
        Some(0),
        false,
        false
    ),
    def!(
        "enable_request_body_logging",
        "Request Body Logging",
        "Store request bodies and user agents in request logs.",
        BASIC,
        Bool,
        "false",
        None,
        false,
        true
    ),
    def!(
        "request_timeout",
        "Request Timeout",
        "Timeout in seconds for a whole non-streamed request.",
        REQUEST,
        Int,
        "600",
        Some(1),
        false,
        true
    ),
    def!(
        "connect_timeout",
        "Connect Timeout",
        "Timeout in seconds for connecting to an upstream.",
        REQUEST,
        Int,
        "15",
        Some(1),
        false,
        true
    ),
    def!(
        "idle_conn_timeout",
        "Idle Connection Timeout",
        "Seconds an idle upstream connection is kept.",
        REQUEST,
        Int,
        "120",
        Some(1),
        false,
        true
    ),
    def!(
        "response_header_timeout",
        "Response Header Timeout",
        "Seconds to wait for an upstream's response headers.",
        REQUEST,
        Int,
        "600",
        Some(1),
        false,
        true
    ),
    def!(
        "max_idle_conns",
        "Max Idle Connections",
        "Maximum idle upstream connections in total.",
        REQUEST,
        Int,
        "100",
        Some(1),
        false,
        true
    ),
    def!(
        "max_idle_conns_per_host",
        "Max Idle Connections per Host",
        "Maximum idle connections per upstream host.",
        REQUEST,
        Int,
        "50",
        Some(1),
        false,
        true
    ),
    def!(
        "proxy_url",
        "Proxy Server URL",
        "HTTP/HTTPS/SOCKS5 proxy for upstream calls; empty uses the environment.",
        REQUEST,
        Str,
        "",
        None,
        false,
        true
    ),
    def!(
        "max_retries",
        "Max Retries",
        "Extra attempts with other keys after a failed attempt.",
        KEY,
        Int,
        "3",
        Some(0),
        false,
        true
    ),
    def!(
        "blacklist_threshold",
        "Blacklist Threshold",
        "Failures after which a key is blacklisted; 0 never blacklists.",
        KEY,
        Int,
        "3",
        Some(0),
        false,
        true
    ),
    def!(
        "failover_status_codes",
        "Failover Status Codes",
        "Upstream status codes that count as a key failure and are retried, e.g. 400-403,405-999.",
        KEY,
        Str,
        "400-403,405-999",
        None,
        false,
        true
    ),
    def!(
        "key_validation_interval_minutes",
        "Key Validation Interval",
        "Minutes between background validations of a group's invalid keys (run by the leader); 0 turns them off.",
        KEY,
        Int,
        "60",
        Some(0),
        false,
        true
    ),
    def!(
        "key_validation_concurrency",
        "Key Validation Concurrency",
        "Parallel validations per group.",
        KEY,
        Int,
        "10",
        Some(1),
        false,
        true
    ),
    def!(
        "key_validation_timeout_seconds",
        "Key Validation Timeout",
        "Timeout in seconds of one validation request.",
        KEY,
        Int,
        "20",
        Some(1),
        false,
        true
    ),
    def!("rate_limit_cooldown_seconds", "Rate Limit Cooldown", "First rest in seconds of a key answered 429 without Retry-After; doubles on each repeat.", KEY, Int, "30", Some(1), false, true),
    def!("rate_limit_cooldown_max_seconds", "Rate Limit Cooldown Max", "Longest rest in seconds of a rate-limited key without Retry-After.", KEY, Int, "300", Some(1), false, true),
    def!("rate_limit_scope", "Rate Limit Scope", "What a 429 rests: `model` rests the key for the request's model only (providers count quotas per model), `key` rests the whole key. Key-wide quota errors always fail the whole key.", KEY, Str, "model", None, true, true),
    def!("retry_after_max_seconds", "Retry-After Cap", "Longest rest in seconds an upstream's Retry-After may impose on a key.", KEY, Int, "86400", Some(1), false, true),
    def!("upstream_error_cooldown_seconds", "Upstream Error Cooldown", "First rest in seconds of a key after a 5xx, connect error or timeout; doubles on each repeat; 0 disables.", KEY, Int, "5", Some(0), false, true),
    def!("upstream_error_cooldown_max_seconds", "Upstream Error Cooldown Max", "Longest rest in seconds after upstream errors.", KEY, Int, "60", Some(0), false, true),
    def!("upstream_error_blacklist", "Blacklist On Upstream Errors", "Count 5xx, connect errors and timeouts toward the blacklist threshold.", KEY, Bool, "false", None, false, true),
    def!("min_usable_keys_percent", "Usable Key Floor", "Percent of a group's keys (at least one) that automatic blacklisting never takes out of rotation; a kept key that fails as dead is leased only when no other key is left.", KEY, Int, "10", Some(0), false, true),
    def!("first_byte_timeout_seconds", "First Byte Timeout", "Seconds to wait for an upstream's first response bytes before retrying with another key; 0 disables.", REQUEST, Int, "0", Some(0), false, true),
    def!("stream_include_usage", "Always Report Stream Usage", "Add stream_options.include_usage to streamed OpenAI chat requests that lack it, so token usage is always known. Clients then receive one more chunk before [DONE], with an empty choices list and the usage.", REQUEST, Bool, "false", None, false, true),
];

/// Looks a setting up by key.
pub fn find(key: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|d| d.key == key)
}

/// Why a setting value was rejected; always names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("unknown setting '{0}'")]
    Unknown(String),
    #[error("setting '{key}' must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("setting '{key}' must be at least {min}")]
    BelowMin { key: String, min: i64 },
    #[error("setting '{0}' is required")]
    Required(String),
    #[error("setting '{key}' is invalid: {reason}")]
    Invalid { key: String, reason: String },
    #[error("setting '{0}' cannot be overridden per group")]
    NotOverridable(String),
}

/// Validates one JSON value for a setting and returns its stored string form.
pub fn validate_value(def: &SettingDef, value: &Value) -> Result<String, SettingError> {
    let key = def.key.to_string();
    let stored = match def.kind {
        SettingKind::Int => {
            let n = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
                .ok_or(SettingError::WrongType {
                    key: key.clone(),
                    expected: "an integer",
                })?;
            if let Some(min) = def.min {
                if n < min {
                    return Err(SettingError::BelowMin { key, min });
                }
            }
            n.to_string()
        }
        SettingKind::Bool => value
            .as_bool()
            .ok_or(SettingError::WrongType {
                key: key.clone(),
                expected: "a boolean",
            })?
            .to_string(),
        SettingKind::Str => {
            let s = value.as_str().ok_or(SettingError::WrongType {
                key: key.clone(),
                expected: "a string",
            })?;
            let s = if def.key == "proxy_keys" {
                crate::domain::split_keys(s).join(",")
            } else {
                s.trim().to_string()
            };
            if def.required && s.is_empty() {
                return Err(SettingError::Required(key));
            }
            if def.key == "rate_limit_scope" && RestScope::parse(&s).is_none() {
                return Err(SettingError::Invalid {
                    key,
                    reason: "must be `model` or `key`".into(),
                });
            }
            if def.key == "failover_status_codes" {
                StatusCodeSet::parse(&s).map_err(|e| SettingError::Invalid {
                    key,
                    reason: e.to_string(),
                })?;
            }
            s
        }
    };
    Ok(stored)
}

/// Validates a group's `config` overrides: only overridable keys, right types, above minimums.
/// `null` values are dropped. Returns the normalised map to store.
pub fn validate_group_overrides(
    config: &Map<String, Value>,
) -> Result<Map<String, Value>, SettingError> {
    let mut out = Map::new();
    for (key, value) in config {
        if value.is_null() {
            continue;
        }
        let def = find(key).ok_or_else(|| SettingError::Unknown(key.clone()))?;
        if !def.group_overridable {
            return Err(SettingError::NotOverridable(key.clone()));
        }
        let stored = validate_value(def, value)?;
        out.insert(key.clone(), typed_value(def, &stored));
    }
    Ok(out)
}

/// A stored string turned back into its typed JSON value (falls back to the default when unparsable).
pub fn typed_value(def: &SettingDef, stored: &str) -> Value {
    match def.kind {
        SettingKind::Int => stored
            .parse::<i64>()
            .or_else(|_| def.default.parse::<i64>())
            .map(Value::from)
            .unwrap_or(Value::Null),
        SettingKind::Bool => Value::Bool(stored == "true"),
        SettingKind::Str => Value::String(stored.to_string()),
    }
}

/// The system settings in force: compiled defaults overlaid with stored values that parse.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemSettings {
    values: HashMap<&'static str, Value>,
}

impl SystemSettings {
    /// Defaults overlaid with stored strings; a stored value that fails validation is ignored
    /// (with a warning) so one bad row cannot take the service down.
    pub fn from_stored(stored: &HashMap<String, String>) -> Self {
        let mut values = HashMap::new();
        for def in SETTINGS.iter() {
            let mut value = typed_value(def, def.default);
            if let Some(raw) = stored.get(def.key) {
                let candidate = typed_value(def, raw);
                match validate_value(def, &candidate) {
                    Ok(_) => value = candidate,
                    Err(err) => {
                        tracing::warn!(setting = def.key, error = %err, "Ignoring an invalid stored setting.")
                    }
                }
            }
            values.insert(def.key, value);
        }
        Self { values }
    }

    /// The typed value of a setting.
    pub fn get(&self, key: &str) -> Value {
        self.values.get(key).cloned().unwrap_or(Value::Null)
    }

    fn int(&self, key: &str) -> i64 {
        self.values.get(key).and_then(Value::as_i64).unwrap_or(0)
    }

    fn string(&self, key: &str) -> String {
        self.values
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The global proxy keys.
    pub fn proxy_keys(&self) -> Vec<String> {
        crate::domain::split_keys(&self.string("proxy_keys"))
    }

    /// Project base URL.
    pub fn app_url(&self) -> String {
        self.string("app_url")
    }

    /// Log retention in days (0 = forever).
    pub fn request_log_retention_days(&self) -> i64 {
        self.int("request_log_retention_days")
    }

    /// Log flush interval in minutes (0 = immediately).
    pub fn request_log_write_interval_minutes(&self) -> i64 {
        self.int("request_log_write_interval_minutes")
    }

    /// The effective config of a group: these settings with the group's overrides on top.
    pub fn effective(&self, overrides: &Map<String, Value>) -> EffectiveConfig {
        let get = |key: &str| -> Value {
            match overrides.get(key) {
                Some(v)
                    if !v.is_null() && find(key).is_some_and(|d| validate_value(d, v).is_ok()) =>
                {
                    v.clone()
                }
                _ => self.get(key),
            }
        };
        let int = |key: &str| get(key).as_i64().unwrap_or(0);
        let spec = get("failover_status_codes")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let failover = StatusCodeSet::parse(&spec).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "Ignoring an invalid failover_status_codes override.");
            StatusCodeSet::default()
        });
        EffectiveConfig {
            enable_request_body_logging: get("enable_request_body_logging")
                .as_bool()
                .unwrap_or(false),
            request_timeout_secs: int("request_timeout"),
            connect_timeout_secs: int("connect_timeout"),
            idle_conn_timeout_secs: int("idle_conn_timeout"),
            response_header_timeout_secs: int("response_header_timeout"),
            max_idle_conns: int("max_idle_conns"),
            max_idle_conns_per_host: int("max_idle_conns_per_host"),
            proxy_url: get("proxy_url").as_str().unwrap_or_default().to_string(),
            max_retries: int("max_retries"),
            blacklist_threshold: int("blacklist_threshold"),
            failover_status_codes: failover,
            key_validation_interval_minutes: int("key_validation_interval_minutes"),
            key_validation_concurrency: int("key_validation_concurrency"),
            key_validation_timeout_secs: int("key_validation_timeout_seconds"),
            health: HealthPolicy {
                blacklist_threshold: int("blacklist_threshold"),
                rate_limit_base: secs(int("rate_limit_cooldown_seconds")),
                rate_limit_max: secs(int("rate_limit_cooldown_max_seconds")),
                retry_after_max: secs(int("retry_after_max_seconds")),
                trouble_base: secs(int("upstream_error_cooldown_seconds")),
                trouble_max: secs(int("upstream_error_cooldown_max_seconds")),
                trouble_counts: get("upstream_error_blacklist").as_bool().unwrap_or(false),
                rest_scope: get("rate_limit_scope")
                    .as_str()
                    .and_then(RestScope::parse)
                    .unwrap_or_default(),
            },
            min_usable_keys_percent: int("min_usable_keys_percent"),
            first_byte_timeout_secs: int("first_byte_timeout_seconds"),
            stream_include_usage: get("stream_include_usage").as_bool().unwrap_or(false),
        }
    }
}

/// Settings as they apply to one group's requests.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveConfig {
    pub enable_request_body_logging: bool,
    pub request_timeout_secs: i64,
    pub connect_timeout_secs: i64,
    pub idle_conn_timeout_secs: i64,
    pub response_header_timeout_secs: i64,
    pub max_idle_conns: i64,
    pub max_idle_conns_per_host: i64,
    pub proxy_url: String,
    pub max_retries: i64,
    pub blacklist_threshold: i64,
    pub failover_status_codes: StatusCodeSet,
    pub key_validation_interval_minutes: i64,
    pub key_validation_concurrency: i64,
    pub key_validation_timeout_secs: i64,
    /// How failures affect keys.
    pub health: HealthPolicy,
    pub min_usable_keys_percent: i64,
    /// 0 = off.
    pub first_byte_timeout_secs: i64,
    /// Ask OpenAI chat streams for their usage when the client did not.
    pub stream_include_usage: bool,
}

fn secs(n: i64) -> std::time::Duration {
    std::time::Duration::from_secs(n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_apply_without_stored_values() {
        let s = SystemSettings::from_stored(&HashMap::new());
        let eff = s.effective(&Map::new());
        assert_eq!(eff.max_retries, 3);
        assert_eq!(eff.blacklist_threshold, 3);
        assert_eq!(eff.health.rest_scope, RestScope::Model);
        let key_wide = json!({"rate_limit_scope": "key"})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(s.effective(&key_wide).health.rest_scope, RestScope::Key);
        assert!(eff.failover_status_codes.contains(429));
        assert!(!eff.failover_status_codes.contains(404));
    }

    #[test]
    fn stored_values_then_group_overrides_win() {
        let stored = HashMap::from([
            ("max_retries".to_string(), "5".to_string()),
            ("request_timeout".to_string(), "oops".to_string()),
        ]);
        let s = SystemSettings::from_stored(&stored);
        assert_eq!(s.effective(&Map::new()).max_retries, 5);
        assert_eq!(s.effective(&Map::new()).request_timeout_secs, 600);
        let overrides = json!({"max_retries": 1}).as_object().cloned().unwrap();
        assert_eq!(s.effective(&overrides).max_retries, 1);
    }

    #[test]
    fn validation_names_the_setting() {
        let def = find("max_retries").unwrap();
        assert_eq!(
            validate_value(def, &json!(-1)),
            Err(SettingError::BelowMin {
                key: "max_retries".into(),
                min: 0
            })
        );
        assert!(matches!(
            validate_value(def, &json!("3")),
            Err(SettingError::WrongType { .. })
        ));
        assert_eq!(validate_value(def, &json!(2.0)).unwrap(), "2");
        let codes = find("failover_status_codes").unwrap();
        assert!(matches!(
            validate_value(codes, &json!("abc")),
            Err(SettingError::Invalid { .. })
        ));
        let scope = find("rate_limit_scope").unwrap();
        assert_eq!(validate_value(scope, &json!(" key ")).unwrap(), "key");
        assert!(matches!(
            validate_value(scope, &json!("group")),
            Err(SettingError::Invalid { .. })
        ));
        let keys = find("proxy_keys").unwrap();
        assert_eq!(validate_value(keys, &json!(" a , b,,")).unwrap(), "a,b");
        assert!(matches!(
            validate_value(keys, &json!(" ")),
            Err(SettingError::Required(_))
        ));
    }

    #[test]
    fn group_overrides_reject_unknown_and_global_only_keys() {
        let bad = json!({"nope": 1}).as_object().cloned().unwrap();
        assert_eq!(
            validate_group_overrides(&bad),
            Err(SettingError::Unknown("nope".into()))
        );
        let global = json!({"app_url": "x"}).as_object().cloned().unwrap();
        assert!(matches!(
            validate_group_overrides(&global),
            Err(SettingError::NotOverridable(_))
        ));
        let ok = json!({"max_retries": 0, "proxy_url": null})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            validate_group_overrides(&ok).unwrap(),
            json!({"max_retries": 0}).as_object().cloned().unwrap()
        );
    }
}
