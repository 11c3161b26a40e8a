//! The 28 system settings: their one table (which also derives [`SettingKey`] and a typed
//! accessor per setting), validation, and the effective config of a group (compiled defaults,
//! overlaid by stored values, overlaid by the group's overrides).

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
    /// The setting's name as the code spells it.
    pub id: SettingKey,
    /// The setting's name as the API and the database spell it.
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    pub kind: SettingKind,
    pub default: &'static str,
    /// Smallest accepted value of an integer setting.
    pub min: Option<i64>,
    /// Largest accepted value of an integer setting.
    pub max: Option<i64>,
    pub required: bool,
    pub group_overridable: bool,
}

const BASIC: &str = "Basic";
const REQUEST: &str = "Request Settings";
const KEY: &str = "Key Configuration";

/// The largest value of a setting in seconds: a year. Larger values mean "never" to an operator
/// but overflow clock arithmetic.
const YEAR: i64 = 31_536_000;
/// The largest count (connections, retries, failures, parallel probes).
const COUNT: i64 = 1_000_000;

/// The one settings table. Each entry names its key (the enum variant and the wire name), its
/// kind and compiled default; the macro derives [`SettingKey`], [`SETTINGS`] and one typed
/// accessor per setting on [`SystemSettings`], so code reads a setting by a name the compiler
/// checks, and only input (the settings API, group overrides, stored rows) is looked up by string.
macro_rules! settings_table {
    ($(
        $variant:ident $key:ident: $kind:ident = $default:literal {
            name: $name:literal,
            description: $desc:literal,
            category: $cat:expr,
            $(range: $min:literal..=$max:expr,)?
            required: $req:literal,
            group_overridable: $ovr:literal,
        },
    )*) => {
        /// A system setting, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum SettingKey {
            $($variant,)*
        }

        impl SettingKey {
            /// Every setting, in table order.
            pub const ALL: &'static [SettingKey] = &[$(SettingKey::$variant,)*];

            /// The key as the API and the database spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(SettingKey::$variant => stringify!($key),)*
                }
            }

            /// The setting's definition.
            pub fn def(self) -> &'static SettingDef {
                &SETTINGS[self as usize]
            }
        }

        /// All settings, in the order the API and UI list them.
        pub const SETTINGS: &[SettingDef] = &[$(
            SettingDef {
                id: SettingKey::$variant,
                key: stringify!($key),
                name: $name,
                description: $desc,
                category: $cat,
                kind: SettingKind::$kind,
                default: $default,
                min: settings_table!(@bound $($min)?),
                max: settings_table!(@bound $($max)?),
                required: $req,
                group_overridable: $ovr,
            },
        )*];

        impl SystemSettings {
            $(
                #[doc = concat!("`", stringify!($key), "`: ", $desc)]
                pub fn $key(&self) -> settings_table!(@type $kind) {
                    settings_table!(@read $kind, self.get(SettingKey::$variant))
                }
            )*
        }
    };
    (@bound) => { None };
    (@bound $bound:expr) => { Some($bound) };
    (@type Int) => { i64 };
    (@type Bool) => { bool };
    (@type Str) => { String };
    (@read Int, $value:expr) => { $value.as_i64().unwrap_or(0) };
    (@read Bool, $value:expr) => { $value.as_bool().unwrap_or(false) };
    (@read Str, $value:expr) => { $value.as_str().unwrap_or_default().to_string() };
}

settings_table! {
    AppUrl app_url: Str = "http://localhost:3001" {
        name: "Project URL",
        description: "Base URL of the project, used to build group endpoint addresses.",
        category: BASIC,
        required: true,
        group_overridable: false,
    },
    ProxyKeys proxy_keys: Str = "" {
        name: "Global Proxy Keys",
        description: "Global proxy keys for accessing all groups, comma separated.",
        category: BASIC,
        required: true,
        group_overridable: false,
    },
    RequestLogRetentionDays request_log_retention_days: Int = "7" {
        name: "Log Retention Days",
        description: "Days to keep request logs; 0 keeps them forever.",
        category: BASIC,
        range: 0..=36_500,
        required: false,
        group_overridable: false,
    },
    RequestLogWriteIntervalMinutes request_log_write_interval_minutes: Int = "1" {
        name: "Log Write Interval",
        description: "Upper bound in minutes on how long a request log waits before it is written (the server writes within REQUEST_LOG_MAX_DELAY_MS, 1 s by default, anyway); 0 writes at once.",
        category: BASIC,
        range: 0..=525_600,
        required: false,
        group_overridable: false,
    },
    EnableRequestBodyLogging enable_request_body_logging: Bool = "false" {
        name: "Request Body Logging",
        description: "Store request bodies and user agents in request logs.",
        category: BASIC,
        required: false,
        group_overridable: true,
    },
    RequestTimeout request_timeout: Int = "600" {
        name: "Request Timeout",
        description: "Timeout in seconds for a whole non-streamed request.",
        category: REQUEST,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    ConnectTimeout connect_timeout: Int = "15" {
        name: "Connect Timeout",
        description: "Timeout in seconds for connecting to an upstream.",
        category: REQUEST,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    IdleConnTimeout idle_conn_timeout: Int = "120" {
        name: "Idle Connection Timeout",
        description: "Seconds an idle upstream connection is kept.",
        category: REQUEST,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    ResponseHeaderTimeout response_header_timeout: Int = "600" {
        name: "Response Header Timeout",
        description: "Seconds to wait for an upstream's response headers.",
        category: REQUEST,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    MaxIdleConns max_idle_conns: Int = "100" {
        name: "Max Idle Connections",
        description: "Maximum idle upstream connections in total.",
        category: REQUEST,
        range: 1..=COUNT,
        required: false,
        group_overridable: true,
    },
    MaxIdleConnsPerHost max_idle_conns_per_host: Int = "50" {
        name: "Max Idle Connections per Host",
        description: "Maximum idle connections per upstream host.",
        category: REQUEST,
        range: 1..=COUNT,
        required: false,
        group_overridable: true,
    },
    ProxyUrl proxy_url: Str = "" {
        name: "Proxy Server URL",
        description: "HTTP/HTTPS/SOCKS5 proxy for upstream calls; empty uses the environment.",
        category: REQUEST,
        required: false,
        group_overridable: true,
    },
    MaxRetries max_retries: Int = "3" {
        name: "Max Retries",
        description: "Extra attempts with other keys after a failed attempt.",
        category: KEY,
        range: 0..=COUNT,
        required: false,
        group_overridable: true,
    },
    BlacklistThreshold blacklist_threshold: Int = "3" {
        name: "Blacklist Threshold",
        description: "Failures after which a key is blacklisted; 0 never blacklists.",
        category: KEY,
        range: 0..=COUNT,
        required: false,
        group_overridable: true,
    },
    FailoverStatusCodes failover_status_codes: Str = "400-403,405-999" {
        name: "Failover Status Codes",
        description: "Upstream status codes that count as a key failure and are retried, e.g. 400-403,405-999.",
        category: KEY,
        required: false,
        group_overridable: true,
    },
    KeyValidationIntervalMinutes key_validation_interval_minutes: Int = "60" {
        name: "Key Validation Interval",
        description: "Minutes between background validations of a group's invalid keys (run by the leader); 0 turns them off.",
        category: KEY,
        range: 0..=525_600,
        required: false,
        group_overridable: true,
    },
    KeyValidationConcurrency key_validation_concurrency: Int = "10" {
        name: "Key Validation Concurrency",
        description: "Parallel validations per group.",
        category: KEY,
        range: 1..=COUNT,
        required: false,
        group_overridable: true,
    },
    KeyValidationTimeoutSeconds key_validation_timeout_seconds: Int = "20" {
        name: "Key Validation Timeout",
        description: "Timeout in seconds of one validation request.",
        category: KEY,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    RateLimitCooldownSeconds rate_limit_cooldown_seconds: Int = "30" {
        name: "Rate Limit Cooldown",
        description: "First rest in seconds of a key answered 429 without Retry-After; doubles on each repeat.",
        category: KEY,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    RateLimitCooldownMaxSeconds rate_limit_cooldown_max_seconds: Int = "300" {
        name: "Rate Limit Cooldown Max",
        description: "Longest rest in seconds of a rate-limited key without Retry-After.",
        category: KEY,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    RateLimitScope rate_limit_scope: Str = "model" {
        name: "Rate Limit Scope",
        description: "What a 429 rests: `model` rests the key for the request's model only (providers count quotas per model), `key` rests the whole key. Key-wide quota errors always fail the whole key.",
        category: KEY,
        required: true,
        group_overridable: true,
    },
    RetryAfterMaxSeconds retry_after_max_seconds: Int = "86400" {
        name: "Retry-After Cap",
        description: "Longest rest in seconds an upstream's Retry-After may impose on a key.",
        category: KEY,
        range: 1..=YEAR,
        required: false,
        group_overridable: true,
    },
    UpstreamErrorCooldownSeconds upstream_error_cooldown_seconds: Int = "5" {
        name: "Upstream Error Cooldown",
        description: "First rest in seconds of a key after a 5xx, connect error or timeout; doubles on each repeat; 0 disables.",
        category: KEY,
        range: 0..=YEAR,
        required: false,
        group_overridable: true,
    },
    UpstreamErrorCooldownMaxSeconds upstream_error_cooldown_max_seconds: Int = "60" {
        name: "Upstream Error Cooldown Max",
        description: "Longest rest in seconds after upstream errors.",
        category: KEY,
        range: 0..=YEAR,
        required: false,
        group_overridable: true,
    },
    UpstreamErrorBlacklist upstream_error_blacklist: Bool = "false" {
        name: "Blacklist On Upstream Errors",
        description: "Count 5xx, connect errors and timeouts toward the blacklist threshold.",
        category: KEY,
        required: false,
        group_overridable: true,
    },
    MinUsableKeysPercent min_usable_keys_percent: Int = "10" {
        name: "Usable Key Floor",
        description: "Percent of a group's keys (at least one) that automatic blacklisting never takes out of rotation; a kept key that fails as dead is leased only when no other key is left.",
        category: KEY,
        range: 0..=100,
        required: false,
        group_overridable: true,
    },
    FirstByteTimeoutSeconds first_byte_timeout_seconds: Int = "0" {
        name: "First Byte Timeout",
        description: "Seconds to wait for an upstream's first response bytes before retrying with another key; 0 disables.",
        category: REQUEST,
        range: 0..=YEAR,
        required: false,
        group_overridable: true,
    },
    StreamIncludeUsage stream_include_usage: Bool = "false" {
        name: "Always Report Stream Usage",
        description: "Add stream_options.include_usage to streamed OpenAI chat requests that lack it, so token usage is always known. Clients then receive one more chunk before [DONE], with an empty choices list and the usage.",
        category: REQUEST,
        required: false,
        group_overridable: true,
    },
}

/// Looks a setting up by its wire name (input: the settings API, group overrides, stored rows).
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
    #[error("setting '{key}' must be at most {max}")]
    AboveMax { key: String, max: i64 },
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
            // A whole float (`2.0`) is an integer to JSON Schema and to GPT-Load's Go decoder;
            // one outside i64 is refused rather than saturated.
            let n = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .ok_or(SettingError::WrongType {
                    key: key.clone(),
                    expected: "an integer",
                })?;
            if let Some(min) = def.min.filter(|min| n < *min) {
                return Err(SettingError::BelowMin { key, min });
            }
            if let Some(max) = def.max.filter(|max| n > *max) {
                return Err(SettingError::AboveMax { key, max });
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
            let s = if def.id == SettingKey::ProxyKeys {
                crate::domain::split_keys(s).join(",")
            } else {
                s.trim().to_string()
            };
            if def.required && s.is_empty() {
                return Err(SettingError::Required(key));
            }
            if def.id == SettingKey::RateLimitScope && RestScope::parse(&s).is_none() {
                return Err(SettingError::Invalid {
                    key,
                    reason: "must be `model` or `key`".into(),
                });
            }
            if def.id == SettingKey::FailoverStatusCodes {
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

/// Validates a group's `config` overrides: only overridable keys, right types, within bounds.
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

/// The system settings in force: compiled defaults overlaid with stored values that pass
/// validation, one typed value per [`SettingKey`].
#[derive(Clone, Debug, PartialEq)]
pub struct SystemSettings {
    values: Vec<Value>,
}

impl SystemSettings {
    /// Defaults overlaid with stored strings; a stored value that fails validation is ignored
    /// (with a warning) so one bad row cannot take the service down.
    pub fn from_stored(stored: &HashMap<String, String>) -> Self {
        let values = SETTINGS
            .iter()
            .map(|def| {
                let default = typed_value(def, def.default);
                let Some(raw) = stored.get(def.key) else {
                    return default;
                };
                let candidate = typed_value(def, raw);
                match validate_value(def, &candidate) {
                    Ok(_) => candidate,
                    Err(err) => {
                        tracing::warn!(setting = def.key, error = %err, "Ignoring an invalid stored setting.");
                        default
                    }
                }
            })
            .collect();
        Self { values }
    }

    /// The typed value of a setting, as JSON (number, boolean or string).
    pub fn get(&self, key: SettingKey) -> &Value {
        self.values.get(key as usize).unwrap_or(&Value::Null)
    }

    /// The global proxy keys, one entry each.
    pub fn proxy_key_list(&self) -> Vec<String> {
        crate::domain::split_keys(&self.proxy_keys())
    }

    /// The effective config of a group: these settings with the group's overrides on top.
    pub fn effective(&self, overrides: &Map<String, Value>) -> EffectiveConfig {
        use SettingKey as K;
        // A group's override wins when it is valid for its setting; stored overrides were
        // validated on write, but a row written by another version may hold anything.
        let get = |key: SettingKey| -> Value {
            match overrides.get(key.as_str()) {
                Some(v) if !v.is_null() && validate_value(key.def(), v).is_ok() => v.clone(),
                _ => self.get(key).clone(),
            }
        };
        let int = |key: SettingKey| get(key).as_i64().unwrap_or(0);
        let flag = |key: SettingKey| get(key).as_bool().unwrap_or(false);
        let text = |key: SettingKey| get(key).as_str().unwrap_or_default().to_string();
        let failover = StatusCodeSet::parse(&text(K::FailoverStatusCodes)).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "Ignoring an invalid failover_status_codes override.");
            StatusCodeSet::default()
        });
        EffectiveConfig {
            enable_request_body_logging: flag(K::EnableRequestBodyLogging),
            request_timeout_secs: int(K::RequestTimeout),
            connect_timeout_secs: int(K::ConnectTimeout),
            idle_conn_timeout_secs: int(K::IdleConnTimeout),
            response_header_timeout_secs: int(K::ResponseHeaderTimeout),
            max_idle_conns: int(K::MaxIdleConns),
            max_idle_conns_per_host: int(K::MaxIdleConnsPerHost),
            proxy_url: text(K::ProxyUrl),
            max_retries: int(K::MaxRetries),
            blacklist_threshold: int(K::BlacklistThreshold),
            failover_status_codes: failover,
            key_validation_interval_minutes: int(K::KeyValidationIntervalMinutes),
            key_validation_concurrency: int(K::KeyValidationConcurrency),
            key_validation_timeout_secs: int(K::KeyValidationTimeoutSeconds),
            health: HealthPolicy {
                blacklist_threshold: int(K::BlacklistThreshold),
                rate_limit_base: secs(int(K::RateLimitCooldownSeconds)),
                rate_limit_max: secs(int(K::RateLimitCooldownMaxSeconds)),
                retry_after_max: secs(int(K::RetryAfterMaxSeconds)),
                trouble_base: secs(int(K::UpstreamErrorCooldownSeconds)),
                trouble_max: secs(int(K::UpstreamErrorCooldownMaxSeconds)),
                trouble_counts: flag(K::UpstreamErrorBlacklist),
                rest_scope: RestScope::parse(&text(K::RateLimitScope)).unwrap_or_default(),
            },
            min_usable_keys_percent: int(K::MinUsableKeysPercent),
            first_byte_timeout_secs: int(K::FirstByteTimeoutSeconds),
            stream_include_usage: flag(K::StreamIncludeUsage),
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
        let def = SettingKey::MaxRetries.def();
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
        let codes = SettingKey::FailoverStatusCodes.def();
        assert!(matches!(
            validate_value(codes, &json!("abc")),
            Err(SettingError::Invalid { .. })
        ));
        let scope = SettingKey::RateLimitScope.def();
        assert_eq!(validate_value(scope, &json!(" key ")).unwrap(), "key");
        assert!(matches!(
            validate_value(scope, &json!("group")),
            Err(SettingError::Invalid { .. })
        ));
        let keys = SettingKey::ProxyKeys.def();
        assert_eq!(validate_value(keys, &json!(" a , b,,")).unwrap(), "a,b");
        assert!(matches!(
            validate_value(keys, &json!(" ")),
            Err(SettingError::Required(_))
        ));
    }

    #[test]
    fn keys_and_table_agree() {
        assert_eq!(SETTINGS.len(), 28, "update the module doc's count");
        assert_eq!(SettingKey::ALL.len(), SETTINGS.len());
        for (i, key) in SettingKey::ALL.iter().enumerate() {
            assert_eq!(SETTINGS[i].id, *key);
            assert_eq!(key.def().key, key.as_str());
            assert_eq!(find(key.as_str()).map(|d| d.id), Some(*key));
        }
        for def in SETTINGS {
            assert_eq!(
                def.kind == SettingKind::Int,
                def.min.is_some() && def.max.is_some()
            );
            assert!(validate_value(def, &typed_value(def, def.default)).is_ok() || def.required);
        }
        let s = SystemSettings::from_stored(&HashMap::new());
        assert_eq!(s.request_timeout(), 600);
        assert_eq!(s.rate_limit_scope(), "model");
        assert!(!s.stream_include_usage());
    }

    #[test]
    fn integers_are_bounded_both_ways() {
        let def = SettingKey::MinUsableKeysPercent.def();
        assert_eq!(
            validate_value(def, &json!(101)),
            Err(SettingError::AboveMax {
                key: "min_usable_keys_percent".into(),
                max: 100
            })
        );
        assert!(matches!(
            validate_value(def, &json!(1e300)),
            Err(SettingError::WrongType { .. })
        ));
        assert!(matches!(
            validate_value(SettingKey::RequestTimeout.def(), &json!(i64::MAX)),
            Err(SettingError::AboveMax { .. })
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
