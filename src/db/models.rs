//! Row types of the tables, as diesel reads and writes them.

use chrono::{NaiveDateTime, SecondsFormat, TimeZone, Utc};
use diesel::prelude::*;

use super::compat::{Int32, Json, TextOrEmpty};
use super::schema::{api_keys, groups, system_settings};

/// A `groups` row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = groups)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub display_name: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub proxy_keys: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub description: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub group_type: String,
    pub upstreams: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub validation_endpoint: String,
    pub channel_type: String,
    #[diesel(deserialize_as = Int32)]
    pub sort: i32,
    pub test_model: String,
    pub param_overrides: String,
    pub config: String,
    pub header_rules: String,
    pub model_redirect_rules: String,
    pub model_redirect_strict: bool,
    pub last_validated_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The writable columns of a group (insert and full update).
#[derive(Clone, Debug, Insertable, AsChangeset)]
#[diesel(table_name = groups)]
pub struct GroupValues {
    pub name: String,
    pub display_name: String,
    pub proxy_keys: String,
    pub description: String,
    pub group_type: String,
    #[diesel(serialize_as = Json)]
    pub upstreams: String,
    pub validation_endpoint: String,
    pub channel_type: String,
    pub sort: i32,
    pub test_model: String,
    #[diesel(serialize_as = Json)]
    pub param_overrides: String,
    #[diesel(serialize_as = Json)]
    pub config: String,
    #[diesel(serialize_as = Json)]
    pub header_rules: String,
    #[diesel(serialize_as = Json)]
    pub model_redirect_rules: String,
    pub model_redirect_strict: bool,
    pub updated_at: NaiveDateTime,
}

/// An `api_keys` row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct KeyRow {
    pub id: i64,
    pub key_value: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub key_hash: String,
    pub group_id: i64,
    pub status: String,
    #[diesel(deserialize_as = TextOrEmpty)]
    pub notes: String,
    pub request_count: i64,
    pub failure_count: i64,
    pub last_used_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Running token totals of the key's answered requests (reported usage only).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
}

/// A key to insert.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewKey {
    pub key_value: String,
    pub key_hash: String,
    pub group_id: i64,
    pub status: String,
    pub notes: String,
    pub request_count: i64,
    pub failure_count: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A `system_settings` row to insert.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = system_settings)]
pub struct NewSetting {
    pub setting_key: String,
    pub setting_value: String,
    pub description: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A stored UTC time as the API shows every time: RFC 3339, milliseconds, `Z`.
pub fn rfc3339(t: &NaiveDateTime) -> String {
    Utc.from_utc_datetime(t)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
