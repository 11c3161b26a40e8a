//! A GPT-Load 1.4.9 database, built the way GPT-Load builds it: the DDL its GORM models
//! auto-migrate to on each backend (GORM's type mapping: `uint` → integer/bigint [unsigned],
//! Go `int` → bigint, `bool` → numeric/boolean, `time.Time` → datetime/timestamptz/datetime(3),
//! `type:json` → json), and rows in the value formats its drivers write (SQLite: text times with
//! nanoseconds and a zone offset, booleans as 0/1; nil JSON maps as NULL).
//!
//! The encrypted values were produced outside this code base (Python's `hashlib.pbkdf2_hmac` and
//! `cryptography`'s AESGCM, following GPT-Load's description), so the test does not check our
//! reader against our own writer.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use chrono::{DateTime, Duration, Timelike, Utc};

use super::Backend;

/// GPT-Load's `ENCRYPTION_KEY` for the encrypted fixture.
pub const ENCRYPTION_KEY: &str = "gpt-load-fixture-encryption-key";
/// The global proxy key stored in GPT-Load's `proxy_keys` setting.
pub const GLOBAL_PROXY_KEY: &str = "sk-gl-proxy";

/// (plain key, SHA-256 hex, GPT-Load ciphertext under [`ENCRYPTION_KEY`], GPT-Load HMAC hash).
pub const KEYS: [(&str, &str, &str, &str); 7] = [
    ("sk-gl-oa-active-1", "5007f9e67093a221bcf43149d68964d3d223369328703aa8137a05da41419fa6", "ed5094c01edfeb17c7ffbb52565484c99dd087bc3f843c31b1abf2339a1c6094d59ff1de06cc5c0f7fc3a58dbd", "555a6ac33b8d7bf03a0083a4e497da94089992d65b17ce46f8e4bfd4d66ca277"),
    ("sk-gl-oa-active-2", "3fff9d7cb4ac0874a9b18f788ff3993af12a442dd6714056d6101de3ddb36c03", "8074a5daadc8f224e0887b18f5ae159bb0e63ffcae1ebb4f5b99b676b7c9b977131576c185cebd8955987a8aa2", "f7e314b524db69f50dfba6b78a1f3bffd169ec431c8f858e6e13ce9ca407bd72"),
    ("sk-gl-oa-invalid-3", "06073ee4bcfc81cbc0d53a6811fb0d657e04e20f3bde7d3f91531e5299a03e0f", "6c376b2e9ce71ed467177b4465109f284747743ca843457a5ba6562c6814ff3cea1d2d4364610bed9fbe73f08ef6", "d3d6db996ce640abc09c79302083634843fc5d1ee7672e04e368ca0e115fbbcd"),
    ("sk-gl-resp-1", "91d0cd9118e3d2cf91ff47ef50aa01a46b413ab59425f5fc8fc1d9bbb94430f4", "54c9a2bdd377d2a384e4caf569a860664f5a73ff3f7ad9df291b1bafdbc4b541549f57d3e5526d10", "7c746577bcd7285f374608960c954066e8904d89b18a8dcdb3313643ab1b3766"),
    ("sk-gl-gem-1", "54b618f307a6fc1d71c44cf2a742f455e33b5b03e94ddbc27d4f141694839728", "aaa324fccf7bf572c24dff502ea880015342721b22854a54a4c6464c86899bf6b264f73bb671eb", "a35b06d9dbd5e29c9df5f8b7330917807a79a4de7ed088b2e407e58503bef850"),
    ("sk-gl-claude-1", "6828b1ff4054402e0c004d1d4d9fd44ec5e0e04f531b3b50b758ee27d17b8cc4", "a4a27841877a33ce50970addf0ff358da97c93ecce58bcab06b676c026fa2e9f31dc7d5580b9e873cfa6", "03871bd8baebc7ff10a008910cb730fc42baad3d70c4c7cc2261131f8f832ec6"),
    ("sk-gl-oa2-1", "bd7176c19a308c0a3074d58e861e08cb1f8f822b37753cf5aae49ea79049f0b6", "5920ad11b8803358a7b74ae92235c1fe976a6f2219bcef7ee3dbe850b90ca90163e6faa7994bd9", "86d49b90fa97ae60345e38f6657e15af49a13c36049fec577414a89a61c764f2"),
];

/// Request-log key ciphertexts (GPT-Load encrypts each log row with a fresh nonce).
const LOG_CIPHERTEXTS: [(&str, &str); 3] = [
    ("sk-gl-oa-active-1", "f2446df43663814f4a779b7894696c43e77576981678ce4d86a4e9a9de14df0355e0d6a3e5fa9316612abab0db"),
    ("sk-gl-oa-invalid-3", "65cf8f14f083c84ac7c967d4e8434a66059ac9535e9d532c853bb6e3d6ec6e75b87c4999f5a93341f33ecc2e3f3f"),
    ("sk-gl-oa2-1", "4f30d04a738531dc9332802f60429e9857076403baef45eea606878835787abcf88f66d82243d0"),
];

/// The request-log ids GPT-Load gave its rows (UUID v4 strings).
pub const LOG_IDS: [&str; 4] = [
    "0b6c8f0e-3c1a-4d7e-9a51-2f1e6c0d9b11",
    "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e122",
    "2a3b4c5d-6e7f-4081-9203-b4c5d6e7f833",
    "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a44",
];

/// Group ids as GPT-Load numbered them (a gap where a group was deleted).
pub const GROUPS: [(i64, &str, &str); 6] = [
    (1, "oa", "openai"),
    (2, "oa-resp", "openai-response"),
    (3, "gem", "gemini"),
    (5, "claude", "anthropic"),
    (6, "agg", "openai"),
    (7, "oa2", "openai"),
];

/// The six tables and how many rows the fixture puts in each.
pub const ROW_COUNTS: [(&str, i64); 6] = [
    ("system_settings", 5),
    ("groups", 6),
    ("group_sub_groups", 2),
    ("api_keys", 7),
    ("request_logs", 4),
    ("group_hourly_stats", 3),
];

/// A time as GPT-Load's driver writes it on `backend`.
pub fn time(backend: Backend, t: DateTime<Utc>) -> String {
    match backend {
        // glebarez/mattn sqlite: Go's "2006-01-02 15:04:05.999999999-07:00".
        Backend::Sqlite => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.9f+00:00")),
        Backend::Postgres => format!("'{}+00'", t.format("%Y-%m-%d %H:%M:%S%.6f")),
        // datetime(3), the session in UTC (loc=UTC in the DSN).
        Backend::Mysql => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.3f")),
    }
}

fn boolean(backend: Backend, b: bool) -> &'static str {
    match (backend, b) {
        (Backend::Postgres, true) => "true",
        (Backend::Postgres, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// GORM's DDL for GPT-Load 1.4.9's models on `backend`.
pub fn schema(backend: Backend) -> String {
    let (id, int, uint, time, boolean, q) = match backend {
        Backend::Sqlite => (
            "integer PRIMARY KEY AUTOINCREMENT",
            "integer",
            "integer",
            "datetime",
            "numeric",
            '`',
        ),
        Backend::Postgres => (
            "bigserial PRIMARY KEY",
            "bigint",
            "bigint",
            "timestamptz",
            "boolean",
            '"',
        ),
        Backend::Mysql => (
            "bigint unsigned AUTO_INCREMENT PRIMARY KEY",
            "bigint",
            "bigint unsigned",
            "datetime(3) NULL",
            "boolean",
            '`',
        ),
    };
    let time_nn = match backend {
        Backend::Mysql => "datetime(3) NOT NULL",
        _ if backend == Backend::Postgres => "timestamptz NOT NULL",
        _ => "datetime NOT NULL",
    };
    let sql = format!(
        "CREATE TABLE ~system_settings~ (~id~ {id},~setting_key~ varchar(255) NOT NULL,~setting_value~ text NOT NULL,~description~ varchar(512),~created_at~ {time},~updated_at~ {time},CONSTRAINT ~uni_system_settings_setting_key~ UNIQUE (~setting_key~));
CREATE TABLE ~groups~ (~id~ {id},~name~ varchar(255) NOT NULL,~display_name~ varchar(255),~proxy_keys~ text,~description~ varchar(512),~group_type~ varchar(50) DEFAULT 'standard',~upstreams~ json NOT NULL,~validation_endpoint~ varchar(255),~channel_type~ varchar(50) NOT NULL,~sort~ {int} DEFAULT 0,~test_model~ varchar(255) NOT NULL,~param_overrides~ json,~config~ json,~header_rules~ json,~model_redirect_rules~ json,~model_redirect_strict~ {boolean} DEFAULT false,~last_validated_at~ {time},~created_at~ {time},~updated_at~ {time},CONSTRAINT ~uni_groups_name~ UNIQUE (~name~));
CREATE TABLE ~group_sub_groups~ (~id~ {id},~group_id~ {uint} NOT NULL,~sub_group_id~ {uint} NOT NULL,~weight~ {int} DEFAULT 0,~created_at~ {time},~updated_at~ {time});
CREATE UNIQUE INDEX ~idx_group_sub~ ON ~group_sub_groups~ (~group_id~,~sub_group_id~);
CREATE TABLE ~api_keys~ (~id~ {id},~key_value~ text NOT NULL,~key_hash~ varchar(128),~group_id~ {uint} NOT NULL,~status~ varchar(50) NOT NULL DEFAULT 'active',~notes~ varchar(255) DEFAULT '',~request_count~ bigint NOT NULL DEFAULT 0,~failure_count~ bigint NOT NULL DEFAULT 0,~last_used_at~ {time},~created_at~ {time},~updated_at~ {time});
CREATE INDEX ~idx_api_keys_group_last_used_id~ ON ~api_keys~ (~group_id~,~last_used_at~,~id~);
CREATE INDEX ~idx_api_keys_key_hash~ ON ~api_keys~ (~key_hash~);
CREATE INDEX ~idx_api_keys_group_id~ ON ~api_keys~ (~group_id~);
CREATE INDEX ~idx_api_keys_status~ ON ~api_keys~ (~status~);
CREATE TABLE ~request_logs~ (~id~ varchar(36) NOT NULL,~timestamp~ {time_nn},~group_id~ {uint} NOT NULL,~group_name~ varchar(255),~parent_group_id~ {uint},~parent_group_name~ varchar(255),~key_value~ text,~key_hash~ varchar(128),~model~ varchar(255),~is_success~ {boolean} NOT NULL,~source_ip~ varchar(64),~status_code~ {int} NOT NULL,~request_path~ varchar(500),~duration~ bigint NOT NULL,~error_message~ text,~user_agent~ varchar(512),~request_type~ varchar(20) NOT NULL DEFAULT 'final',~upstream_addr~ varchar(500),~is_stream~ {boolean} NOT NULL,~request_body~ text,PRIMARY KEY (~id~));
CREATE INDEX ~idx_request_logs_timestamp~ ON ~request_logs~ (~timestamp~);
CREATE INDEX ~idx_request_logs_group_id~ ON ~request_logs~ (~group_id~);
CREATE INDEX ~idx_request_logs_group_name~ ON ~request_logs~ (~group_name~);
CREATE INDEX ~idx_request_logs_parent_group_id~ ON ~request_logs~ (~parent_group_id~);
CREATE INDEX ~idx_request_logs_parent_group_name~ ON ~request_logs~ (~parent_group_name~);
CREATE INDEX ~idx_request_logs_key_hash~ ON ~request_logs~ (~key_hash~);
CREATE INDEX ~idx_request_logs_model~ ON ~request_logs~ (~model~);
CREATE INDEX ~idx_request_logs_request_type~ ON ~request_logs~ (~request_type~);
CREATE TABLE ~group_hourly_stats~ (~id~ {id},~time~ {time_nn},~group_id~ {uint} NOT NULL,~success_count~ bigint NOT NULL DEFAULT 0,~failure_count~ bigint NOT NULL DEFAULT 0,~created_at~ {time},~updated_at~ {time});
CREATE UNIQUE INDEX ~idx_group_time~ ON ~group_hourly_stats~ (~time~,~group_id~);
"
    );
    sql.replace('~', &q.to_string())
}

/// The start of the hour `hours_ago` hours before now.
pub fn hour(now: DateTime<Utc>, hours_ago: i64) -> DateTime<Utc> {
    let start = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    start - Duration::hours(hours_ago)
}

/// GPT-Load's rows: customised settings, a group of each channel type and an aggregate with two
/// members, keys of both statuses (encrypted when `encrypted`), final and retry request logs (one
/// from before GPT-Load had parent groups and key hashes, with those columns NULL) and hourly
/// statistics. Upstreams point at `upstream`.
pub fn rows(backend: Backend, encrypted: bool, upstream: &str, now: DateTime<Utc>) -> String {
    let t = |at: DateTime<Utc>| time(backend, at);
    let b = |v: bool| boolean(backend, v);
    let created = t(now - Duration::days(30) + Duration::nanoseconds(123_456_789));
    let q = if backend == Backend::Postgres {
        '"'
    } else {
        '`'
    };
    let mut sql = String::new();
    for (key, value) in [
        ("proxy_keys", GLOBAL_PROXY_KEY),
        ("max_retries", "2"),
        ("blacklist_threshold", "3"),
        ("request_log_retention_days", "30"),
        ("app_url", "http://gpt-load.example.com"),
    ] {
        sql += &format!(
            "INSERT INTO system_settings (setting_key, setting_value, description, created_at, updated_at) VALUES ('{key}', '{value}', 'config.{key}_desc', {created}, {created});\n"
        );
    }
    let upstreams = format!("[{{\"url\":\"{upstream}\",\"weight\":1}}]");
    let groups: [(i64, &str, &str, &str, &str, &str, &str, &str, &str, &str); 6] = [
        // id, name, channel, type, upstreams, param_overrides, config, header_rules, redirects, test_model
        (
            1,
            "oa",
            "openai",
            "standard",
            &upstreams,
            "NULL",
            "'{\"max_retries\":2}'",
            "'[]'",
            "'{\"gpt-4\":\"gpt-4o-mini\"}'",
            "gpt-4o-mini",
        ),
        (
            2,
            "oa-resp",
            "openai-response",
            "standard",
            &upstreams,
            "'{}'",
            "NULL",
            "NULL",
            "NULL",
            "gpt-4.1-nano",
        ),
        (
            3,
            "gem",
            "gemini",
            "standard",
            &upstreams,
            "'{\"temperature\":0.5}'",
            "'{}'",
            "'[{\"key\":\"X-From-GptLoad\",\"value\":\"1\",\"action\":\"set\"}]'",
            "'{}'",
            "gemini-2.0-flash",
        ),
        (
            5,
            "claude",
            "anthropic",
            "standard",
            &upstreams,
            "'null'",
            "'null'",
            "'null'",
            "'null'",
            "claude-3-haiku-20240307",
        ),
        (
            6,
            "agg",
            "openai",
            "aggregate",
            "[]",
            "'{}'",
            "'{}'",
            "'[]'",
            "'{}'",
            "-",
        ),
        (
            7,
            "oa2",
            "openai",
            "standard",
            &upstreams,
            "NULL",
            "NULL",
            "'[]'",
            "NULL",
            "gpt-4o-mini",
        ),
    ];
    for (i, (id, name, channel, kind, ups, po, cfg, hr, mr, model)) in groups.iter().enumerate() {
        sql += &format!(
            "INSERT INTO {q}groups{q} (id, name, display_name, proxy_keys, description, group_type, upstreams, validation_endpoint, channel_type, sort, test_model, param_overrides, config, header_rules, model_redirect_rules, model_redirect_strict, last_validated_at, created_at, updated_at) VALUES ({id}, '{name}', 'GL {name}', '', 'from GPT-Load', '{kind}', '{ups}', '', '{channel}', {sort}, '{model}', {po}, {cfg}, {hr}, {mr}, {strict}, {validated}, {created}, {created});\n",
            sort = i * 10,
            strict = b(false),
            validated = t(now - Duration::minutes(1)),
        );
    }
    for (id, sub, weight) in [(1, 1, 10), (2, 7, 5)] {
        sql += &format!(
            "INSERT INTO group_sub_groups (id, group_id, sub_group_id, weight, created_at, updated_at) VALUES ({id}, 6, {sub}, {weight}, {created}, {created});\n"
        );
    }
    let key_groups = [1, 1, 1, 2, 3, 5, 7];
    let used = t(now - Duration::hours(2) + Duration::nanoseconds(987_654_321));
    for (i, ((plain, sha, cipher, hmac), group)) in KEYS.iter().zip(key_groups).enumerate() {
        let (value, hash) = if encrypted {
            (*cipher, *hmac)
        } else {
            (*plain, *sha)
        };
        let (status, failures) = if plain.contains("invalid") {
            ("invalid", 3)
        } else {
            ("active", 0)
        };
        let last_used = if i == 0 {
            used.clone()
        } else {
            "NULL".to_string()
        };
        sql += &format!(
            "INSERT INTO api_keys (id, key_value, key_hash, group_id, status, notes, request_count, failure_count, last_used_at, created_at, updated_at) VALUES ({id}, '{value}', '{hash}', {group}, '{status}', '{notes}', {requests}, {failures}, {last_used}, {created}, {created});\n",
            id = i + 1,
            notes = if i == 0 { "first key" } else { "" },
            requests = if i == 0 { 41 } else { 0 },
        );
    }
    let log_key = |plain: &str| -> (String, String) {
        let (_, sha, _, hmac) = KEYS.iter().find(|k| k.0 == plain).unwrap();
        if encrypted {
            let cipher = LOG_CIPHERTEXTS.iter().find(|k| k.0 == plain).unwrap().1;
            (format!("'{cipher}'"), format!("'{hmac}'"))
        } else {
            (format!("'{plain}'"), format!("'{sha}'"))
        }
    };
    let (k1, h1) = log_key("sk-gl-oa-active-1");
    let (k3, h3) = log_key("sk-gl-oa-invalid-3");
    let (k7, h7) = log_key("sk-gl-oa2-1");
    let logs = [
        // id, minutes ago, group, group name, parent id, parent name, key, hash, success, status, type
        (
            LOG_IDS[0],
            90,
            1,
            "oa",
            "0",
            "''",
            k3.as_str(),
            h3.as_str(),
            false,
            401,
            "retry",
        ),
        (
            LOG_IDS[1],
            89,
            1,
            "oa",
            "0",
            "''",
            k1.as_str(),
            h1.as_str(),
            true,
            200,
            "final",
        ),
        (
            LOG_IDS[2],
            30,
            7,
            "oa2",
            "6",
            "'agg'",
            k7.as_str(),
            h7.as_str(),
            true,
            200,
            "final",
        ),
        // Written by a GPT-Load older than parent groups and key hashes: those columns are NULL.
        (
            LOG_IDS[3], 20, 1, "oa", "NULL", "NULL", "''", "NULL", false, 503, "final",
        ),
    ];
    for (id, minutes, group, name, parent, parent_name, key, hash, ok, status, kind) in logs {
        sql += &format!(
            "INSERT INTO request_logs (id, {q}timestamp{q}, group_id, group_name, parent_group_id, parent_group_name, key_value, key_hash, model, is_success, source_ip, status_code, request_path, duration, error_message, user_agent, request_type, upstream_addr, is_stream, request_body) VALUES ('{id}', {ts}, {group}, '{name}', {parent}, {parent_name}, {key}, {hash}, 'gpt-4o-mini', {ok}, '10.0.0.9', {status}, '/proxy/{name}/v1/chat/completions', 1234, '{err}', 'curl/8', '{kind}', '{upstream}/v1/chat/completions', {stream}, '');\n",
            ts = t(now - Duration::minutes(minutes) + Duration::nanoseconds(5_000_000)),
            ok = b(ok),
            err = if ok { "" } else { "upstream said no" },
            stream = b(false),
        );
    }
    for (hours_ago, group, success, failure) in [(1, 1, 40, 2), (0, 7, 7, 0), (2, 3, 5, 1)] {
        sql += &format!(
            "INSERT INTO group_hourly_stats ({q}time{q}, group_id, success_count, failure_count, created_at, updated_at) VALUES ({at}, {group}, {success}, {failure}, {created}, {created});\n",
            at = t(hour(now, hours_ago)),
        );
    }
    if backend == Backend::Postgres {
        // GORM's inserts with explicit ids leave the sequences behind; GPT-Load's own rows took
        // their ids from them. Move them past the fixture's ids like real use would have.
        for table in [
            "system_settings",
            "groups",
            "group_sub_groups",
            "api_keys",
            "group_hourly_stats",
        ] {
            sql += &format!(
                "SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT MAX(id) FROM \"{table}\"));\n"
            );
        }
    }
    sql
}
