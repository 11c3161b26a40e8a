//! Static configuration from the environment (and a `.env` file), read and validated once at
//! start. Every invalid value fails start-up with a message that names the variable.

use std::collections::HashMap;
use std::fmt;

use crate::db::DatabaseUrl;
use crate::outbound::{OutboundProxy, ProxyRoute};

/// A configuration error, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is required: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var} has an invalid value '{value}': {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("could not read the environment: {0}")]
    Source(String),
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The admin secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<empty>)"
        } else {
            "Secret(****)"
        })
    }
}

/// Everything read from the environment.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub port: u16,
    pub host: String,
    pub server_read_timeout_secs: u64,
    pub server_write_timeout_secs: u64,
    pub server_idle_timeout_secs: u64,
    pub graceful_shutdown_timeout_secs: u64,
    pub is_slave: bool,
    pub auth_key: Secret,
    pub encryption_key: Secret,
    pub database: DatabaseUrl,
    pub redis_dsn: Secret,
    /// Prefix of every Redis key and channel (`REDIS_KEY_PREFIX`, default `gpt-load:`).
    pub redis_key_prefix: String,
    /// Leader lock lifetime (`CLUSTER_LEADER_TTL_MS`, 3 s); nodes try for it and the leader renews
    /// it every sixth (see `cluster::actor` for the failover bounds).
    pub cluster_leader_ttl_ms: u64,
    pub max_concurrent_requests: usize,
    pub max_request_body_bytes: usize,
    /// Request bodies held in memory at once, all requests together (`REQUEST_BODY_MEMORY_MB`).
    pub request_body_memory_bytes: usize,
    pub enable_cors: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub log_level: String,
    pub log_format: LogFormat,
    pub log_enable_file: bool,
    pub log_file_path: String,
    pub db_pool_size: usize,
    pub workers: usize,
    /// Serve Prometheus metrics at `/metrics`.
    pub enable_metrics: bool,
    /// Record proxied requests (request logs, hourly stats, key usage). Off: nothing is recorded.
    pub enable_request_logs: bool,
    /// Request log records held in memory at most while the database is slow or down; beyond
    /// it the oldest are dropped and counted.
    pub request_log_buffer_size: usize,
    /// The longest a request log record waits in memory before it is written
    /// (`REQUEST_LOG_MAX_DELAY_MS`); the `request_log_write_interval_minutes` setting can only
    /// shorten it. Bounds what a crash loses.
    pub request_log_max_delay_ms: u64,
    /// How long a database call may wait for a connection before it fails as unavailable
    /// (`DB_TIMEOUT_MS`); also SQLite's busy timeout.
    pub db_timeout_ms: u64,
    /// Require the admin key for `/metrics`.
    pub metrics_require_auth: bool,
    /// Add `X-GptLoad-Overhead-Ms` to proxied responses.
    pub overhead_header: bool,
    /// Outbound proxies from `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`.
    pub proxy_route: ProxyRoute,
    /// How often the leader looks for groups due for background validation (5 minutes). Not an
    /// environment variable: only tests shorten it.
    pub validation_check_every: std::time::Duration,
    /// The unit of `key_validation_interval_minutes` (a minute). Not an environment variable:
    /// tests shrink it so an interval of 1 passes in milliseconds.
    pub validation_minute: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` name the client for login throttling
    /// (`TRUSTED_PROXIES`); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::http::throttle::IpNet>,
    /// Login throttling limits. Not environment variables: tests shorten them.
    pub login_throttle: crate::http::throttle::ThrottleLimits,
}

/// How often the leader looks for groups due for validation (GPT-Load: every 5 minutes).
pub const VALIDATION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

const WEAK_PATTERNS: [&str; 5] = ["password", "sk-123456", "123456", "admin", "secret"];

impl AppConfig {
    /// Reads the process environment, after loading `.env` from the working directory if present.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(path) => tracing::debug!(path = %path.display(), "Loaded .env file."),
            Err(err) if err.not_found() => {}
            Err(err) => return Err(ConfigError::Source(format!(".env: {err}"))),
        }
        let source = config::Config::builder()
            .add_source(config::Environment::default())
            .build()
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        let vars: HashMap<String, String> = source
            .try_deserialize::<HashMap<String, config::Value>>()
            .map_err(|e| ConfigError::Source(e.to_string()))?
            .into_iter()
            .filter_map(|(k, v)| v.into_string().ok().map(|v| (k.to_ascii_uppercase(), v)))
            .collect();
        Self::from_map(&vars)
    }

    /// Only `DATABASE_DSN` (after `.env`), for commands that touch the database but not the
    /// server, such as `migrate-keys`: they need no `AUTH_KEY`.
    pub fn database_from_env() -> Result<DatabaseUrl, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(err) => return Err(ConfigError::Source(format!(".env: {err}"))),
        }
        let dsn = std::env::var("DATABASE_DSN")
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "./data/gpt-load.db".to_string());
        DatabaseUrl::parse(&dsn).map_err(|reason| ConfigError::Invalid {
            var: "DATABASE_DSN",
            value: "(hidden)".into(),
            reason,
        })
    }

    /// Builds and validates a config from `VAR -> value` pairs (unset variables take defaults).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(vars);
        let auth_key = env.string("AUTH_KEY", "");
        if auth_key.is_empty() {
            return Err(ConfigError::Missing {
                var: "AUTH_KEY",
                hint: "set it to a long random string; it protects the admin API and UI",
            });
        }
        let port = env.int("PORT", 3001, 1, 65535)? as u16;
        let mut graceful = env.int("SERVER_GRACEFUL_SHUTDOWN_TIMEOUT", 10, 0, 3600)? as u64;
        if graceful < 10 {
            tracing::warn!(
                value = graceful,
                "SERVER_GRACEFUL_SHUTDOWN_TIMEOUT is below 10 s; using 10 s."
            );
            graceful = 10;
        }
        let enable_cors = env.bool("ENABLE_CORS", false)?;
        let allowed_origins = env.list("ALLOWED_ORIGINS", &[]);
        if enable_cors && allowed_origins.is_empty() {
            return Err(ConfigError::Invalid {
                var: "ALLOWED_ORIGINS",
                value: String::new(),
                reason: "ENABLE_CORS is true, so at least one allowed origin (or *) is required"
                    .into(),
            });
        }
        let log_level = env.string("LOG_LEVEL", "info").to_ascii_lowercase();
        if !matches!(
            log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            return Err(ConfigError::Invalid {
                var: "LOG_LEVEL",
                value: log_level,
                reason: "expected debug, info, warn or error".into(),
            });
        }
        let log_format = match env
            .string("LOG_FORMAT", "text")
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    var: "LOG_FORMAT",
                    value: other.to_string(),
                    reason: "expected text or json".into(),
                })
            }
        };
        let dsn = env.string("DATABASE_DSN", "./data/gpt-load.db");
        let database = DatabaseUrl::parse(&dsn).map_err(|reason| ConfigError::Invalid {
            var: "DATABASE_DSN",
            value: "(hidden)".into(),
            reason,
        })?;
        let redis_dsn = env.string("REDIS_DSN", "");
        let is_slave = env.bool("IS_SLAVE", false)?;
        if is_slave && redis_dsn.is_empty() {
            return Err(ConfigError::Invalid {
                var: "IS_SLAVE",
                value: "true".into(),
                reason: "a follower needs REDIS_DSN: without Redis it cannot follow a leader or hear about changes made on other nodes".into(),
            });
        }
        let max_body_mb = env.int("MAX_REQUEST_BODY_SIZE_MB", 32, 1, 4096)? as usize;
        let body_memory_mb = env.int("REQUEST_BODY_MEMORY_MB", 128, 1, 65_536)? as usize;
        if body_memory_mb < max_body_mb {
            return Err(ConfigError::Invalid {
                var: "REQUEST_BODY_MEMORY_MB",
                value: body_memory_mb.to_string(),
                reason: format!(
                    "must be at least MAX_REQUEST_BODY_SIZE_MB ({max_body_mb}), or a body of the largest allowed size could never be taken"
                ),
            });
        }
        let config = AppConfig {
            port,
            host: env.string("HOST", "0.0.0.0"),
            server_read_timeout_secs: env.int("SERVER_READ_TIMEOUT", 60, 1, 86_400)? as u64,
            server_write_timeout_secs: env.int("SERVER_WRITE_TIMEOUT", 600, 1, 86_400)? as u64,
            server_idle_timeout_secs: env.int("SERVER_IDLE_TIMEOUT", 120, 1, 86_400)? as u64,
            graceful_shutdown_timeout_secs: graceful,
            is_slave,
            auth_key: Secret::new(auth_key),
            encryption_key: Secret::new(env.string("ENCRYPTION_KEY", "")),
            database,
            redis_dsn: Secret::new(redis_dsn),
            redis_key_prefix: env.string("REDIS_KEY_PREFIX", "gpt-load:"),
            cluster_leader_ttl_ms: env.int("CLUSTER_LEADER_TTL_MS", 3_000, 300, 600_000)? as u64,
            max_concurrent_requests: env.int("MAX_CONCURRENT_REQUESTS", 100, 1, 1_000_000)?
                as usize,
            max_request_body_bytes: max_body_mb * 1024 * 1024,
            request_body_memory_bytes: body_memory_mb * 1024 * 1024,
            enable_cors,
            allowed_origins,
            allowed_methods: env.list(
                "ALLOWED_METHODS",
                &["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            ),
            allowed_headers: env.list("ALLOWED_HEADERS", &["*"]),
            allow_credentials: env.bool("ALLOW_CREDENTIALS", false)?,
            log_level,
            log_format,
            log_enable_file: env.bool("LOG_ENABLE_FILE", false)?,
            log_file_path: env.string("LOG_FILE_PATH", "./data/logs/app.log"),
            db_pool_size: env.int("DB_POOL_SIZE", 16, 1, 1000)? as usize,
            workers: env.int("WORKERS", 0, 0, 1024)? as usize,
            enable_metrics: env.bool("ENABLE_METRICS", false)?,
            enable_request_logs: env.bool("ENABLE_REQUEST_LOGS", true)?,
            request_log_buffer_size: env.int("REQUEST_LOG_BUFFER_SIZE", 100_000, 10, 10_000_000)?
                as usize,
            request_log_max_delay_ms: env.int("REQUEST_LOG_MAX_DELAY_MS", 1000, 0, 3_600_000)?
                as u64,
            db_timeout_ms: env.int("DB_TIMEOUT_MS", 3000, 100, 600_000)? as u64,
            metrics_require_auth: env.bool("METRICS_REQUIRE_AUTH", true)?,
            overhead_header: env.bool("ENABLE_OVERHEAD_HEADER", true)?,
            proxy_route: ProxyRoute {
                http: env.proxy("HTTP_PROXY")?,
                https: env.proxy("HTTPS_PROXY")?,
                no_proxy: env.list("NO_PROXY", &[]),
            },
            validation_check_every: VALIDATION_CHECK_EVERY,
            validation_minute: std::time::Duration::from_secs(60),
            trusted_proxies: networks("TRUSTED_PROXIES", env.list("TRUSTED_PROXIES", &[]))?,
            login_throttle: crate::http::throttle::ThrottleLimits::default(),
        };
        Ok(config)
    }

    /// Warnings about risky but allowed values, logged once at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let key = self.auth_key.expose().to_ascii_lowercase();
        if key.len() < 16 || WEAK_PATTERNS.iter().any(|p| key.contains(p)) {
            out.push("AUTH_KEY is weak: use at least 16 random characters.".to_string());
        }
        let enc = self.encryption_key.expose();
        if !enc.is_empty()
            && (enc.chars().count() < 16
                || WEAK_PATTERNS
                    .iter()
                    .any(|p| enc.to_ascii_lowercase().contains(p)))
        {
            out.push("ENCRYPTION_KEY is weak: use at least 16 random characters; it is all that protects the stored upstream keys in a leaked backup.".to_string());
        }
        if self.enable_cors && self.allowed_origins.iter().any(|o| o == "*") {
            out.push("ALLOWED_ORIGINS allows every origin (*).".to_string());
        }
        out
    }

    /// See [`AppConfig::request_log_max_delay_ms`].
    pub fn request_log_max_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_log_max_delay_ms)
    }

    /// The longest a request log record waits before it is written: `REQUEST_LOG_MAX_DELAY_MS`,
    /// shortened by `request_log_write_interval_minutes` when that is smaller. The setting (which
    /// GPT-Load's UI sets, 1 minute by default) is an upper bound on the delay, no longer the
    /// delay itself, so a crash never loses a minute of logs.
    pub fn log_max_delay(
        &self,
        settings: &gpt_load_actors::settings::SystemSettings,
    ) -> std::time::Duration {
        let minutes = settings.request_log_write_interval_minutes().max(0) as u64;
        self.request_log_max_delay()
            .min(std::time::Duration::from_secs(minutes.saturating_mul(60)))
    }

    /// See [`AppConfig::db_timeout_ms`].
    pub fn db_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.db_timeout_ms)
    }

    /// How long the leader lock lives without renewal.
    pub fn leader_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.cluster_leader_ttl_ms)
    }

    /// How often the leader records its term in the journal: a third of the TTL.
    pub fn leader_renew_interval(&self) -> std::time::Duration {
        self.leader_ttl() / 3
    }

    /// `http://{host}:{port}`, with `localhost` for wildcard hosts: the default `app_url`.
    pub fn default_app_url(&self) -> String {
        let host = if self.host.is_empty() || self.host == "0.0.0.0" || self.host == "::" {
            "localhost"
        } else {
            self.host.as_str()
        };
        format!("http://{host}:{}", self.port)
    }
}

/// Parses a list of addresses and networks (`TRUSTED_PROXIES`).
fn networks(
    var: &'static str,
    items: Vec<String>,
) -> Result<Vec<crate::http::throttle::IpNet>, ConfigError> {
    items
        .into_iter()
        .map(|item| {
            crate::http::throttle::IpNet::parse(&item).ok_or_else(|| ConfigError::Invalid {
                var,
                value: item,
                reason: "expected an IP address or a network such as 10.0.0.0/8".into(),
            })
        })
        .collect()
}

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn raw(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn string(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or(default).to_string()
    }

    fn int(&self, var: &'static str, default: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
        let Some(raw) = self.raw(var) else {
            return Ok(default);
        };
        let value: i64 = raw.parse().map_err(|_| ConfigError::Invalid {
            var,
            value: raw.to_string(),
            reason: "expected an integer".into(),
        })?;
        if value < min || value > max {
            return Err(ConfigError::Invalid {
                var,
                value: raw.to_string(),
                reason: format!("must be between {min} and {max}"),
            });
        }
        Ok(value)
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.raw(var) else {
            return Ok(default);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                var,
                value: raw.to_string(),
                reason: "expected true/false, 1/0, yes/no or on/off".into(),
            }),
        }
    }

    fn proxy(&self, var: &'static str) -> Result<Option<OutboundProxy>, ConfigError> {
        match self.raw(var) {
            None => Ok(None),
            Some(raw) => {
                OutboundProxy::parse(raw)
                    .map(Some)
                    .map_err(|reason| ConfigError::Invalid {
                        var,
                        value: "(hidden)".into(),
                        reason,
                    })
            }
        }
    }

    fn list(&self, var: &str, default: &[&str]) -> Vec<String> {
        let items: Vec<String> = self
            .raw(var)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if items.is_empty() {
            default.iter().map(|s| s.to_string()).collect()
        } else {
            items
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn auth_key_is_required() {
        let err = AppConfig::from_map(&vars(&[])).unwrap_err().to_string();
        assert!(err.contains("AUTH_KEY"), "{err}");
    }

    #[test]
    fn defaults_match_gpt_load() {
        let c = AppConfig::from_map(&vars(&[("AUTH_KEY", "Zx8-long-random-Kq2p")])).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.max_concurrent_requests, 100);
        assert_eq!(c.request_body_memory_bytes, 128 << 20);
        assert_eq!(c.database, DatabaseUrl::Sqlite("./data/gpt-load.db".into()));
        assert_eq!(c.default_app_url(), "http://localhost:3001");
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("PORT", "0"),
            ("PORT", "70000"),
            ("PORT", "abc"),
            ("IS_SLAVE", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("MAX_CONCURRENT_REQUESTS", "0"),
            ("REQUEST_BODY_MEMORY_MB", "16"),
        ] {
            let err = AppConfig::from_map(&vars(&[("AUTH_KEY", "k"), (var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn a_follower_needs_redis() {
        let err = AppConfig::from_map(&vars(&[("AUTH_KEY", "k"), ("IS_SLAVE", "true")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IS_SLAVE") && err.contains("REDIS_DSN"),
            "{err}"
        );
        let c = AppConfig::from_map(&vars(&[
            ("AUTH_KEY", "k"),
            ("IS_SLAVE", "true"),
            ("REDIS_DSN", "redis://:pw@127.0.0.1:6379/0"),
            ("CLUSTER_LEADER_TTL_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(c.leader_renew_interval().as_millis(), 500);
        assert_eq!(c.redis_key_prefix, "gpt-load:");
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn cors_needs_origins() {
        let err = AppConfig::from_map(&vars(&[("AUTH_KEY", "k"), ("ENABLE_CORS", "true")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ALLOWED_ORIGINS"), "{err}");
    }

    #[test]
    fn encryption_key_is_accepted_hidden_and_weak_values_warn() {
        let strong = AppConfig::from_map(&vars(&[
            ("AUTH_KEY", "Zx8-long-random-Kq2p"),
            ("ENCRYPTION_KEY", "Vq7-Lm2p-Xr9t-Wb4k-Zn1c"),
        ]))
        .unwrap();
        assert_eq!(strong.encryption_key.expose(), "Vq7-Lm2p-Xr9t-Wb4k-Zn1c");
        assert!(strong.warnings().is_empty(), "{:?}", strong.warnings());
        assert!(!format!("{strong:?}").contains("Vq7-Lm2p"));
        for weak in ["short", "my-secret-encryption-key-123"] {
            let c = AppConfig::from_map(&vars(&[
                ("AUTH_KEY", "Zx8-long-random-Kq2p"),
                ("ENCRYPTION_KEY", weak),
            ]))
            .unwrap();
            assert!(
                c.warnings().iter().any(|w| w.contains("ENCRYPTION_KEY")),
                "{weak}"
            );
            assert!(c.warnings().iter().all(|w| !w.contains(weak)));
        }
    }

    #[test]
    fn weak_keys_warn_and_short_grace_is_raised() {
        let c = AppConfig::from_map(&vars(&[
            ("AUTH_KEY", "admin"),
            ("SERVER_GRACEFUL_SHUTDOWN_TIMEOUT", "3"),
        ]))
        .unwrap();
        assert!(c.warnings().iter().any(|w| w.contains("AUTH_KEY")));
        assert_eq!(c.graceful_shutdown_timeout_secs, 10);
        assert!(!format!("{c:?}").contains("admin"));
    }
}
