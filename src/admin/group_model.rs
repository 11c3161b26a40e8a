//! GPT-Load's raw group model as two of its routes return it (`GET /api/groups/list` and the
//! `group` of each aggregate member): the group response plus `effective_config` (every setting)
//! and `api_keys` (never loaded there, so `null`). See docs/compatibility.md.

use gpt_load_actors::settings::{validate_value, SettingKind, SystemSettings, SETTINGS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::{timestamp, timestamp_opt};
use crate::db::models::GroupRow;

/// One upstream base URL and its weight (0 disables it).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UpstreamSpec {
    pub url: String,
    pub weight: i64,
}

/// A header rule: `action` `set` puts `value` (with `${CLIENT_IP}`, `${GROUP_NAME}`, `${API_KEY}`,
/// `${TIMESTAMP_MS}`, `${TIMESTAMP_S}` substituted) on upstream requests, `remove` deletes the header.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HeaderRuleSpec {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub action: String,
}

/// A group as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupResponse {
    pub id: i64,
    pub name: String,
    /// `{app_url}/proxy/{name}`.
    pub endpoint: String,
    pub display_name: String,
    pub description: String,
    pub group_type: String,
    #[schema(value_type = Vec<UpstreamSpec>)]
    pub upstreams: Value,
    pub channel_type: String,
    pub sort: i32,
    pub test_model: String,
    pub validation_endpoint: String,
    #[schema(value_type = Object)]
    pub param_overrides: Value,
    #[schema(value_type = Object)]
    pub model_redirect_rules: Value,
    pub model_redirect_strict: bool,
    #[schema(value_type = super::settings::GroupConfig)]
    pub config: Value,
    #[schema(value_type = Vec<HeaderRuleSpec>)]
    pub header_rules: Value,
    pub proxy_keys: String,
    pub last_validated_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl GroupResponse {
    /// The API form of a stored group.
    pub fn from_row(row: &GroupRow, app_url: &str) -> Self {
        let parse =
            |text: &str, fallback: Value| serde_json::from_str::<Value>(text).unwrap_or(fallback);
        GroupResponse {
            id: row.id,
            name: row.name.clone(),
            endpoint: format!("{}/proxy/{}", app_url.trim_end_matches('/'), row.name),
            display_name: row.display_name.clone(),
            description: row.description.clone(),
            group_type: row.group_type.clone(),
            upstreams: parse(&row.upstreams, json!([])),
            channel_type: row.channel_type.clone(),
            sort: row.sort,
            test_model: row.test_model.clone(),
            validation_endpoint: row.validation_endpoint.clone(),
            param_overrides: parse(&row.param_overrides, json!({})),
            model_redirect_rules: parse(&row.model_redirect_rules, json!({})),
            model_redirect_strict: row.model_redirect_strict,
            config: parse(&row.config, json!({})),
            header_rules: parse(&row.header_rules, json!([])),
            proxy_keys: row.proxy_keys.clone(),
            last_validated_at: timestamp_opt(&row.last_validated_at),
            created_at: timestamp(&row.created_at),
            updated_at: timestamp(&row.updated_at),
        }
    }
}

/// A group in the shape of GPT-Load's database model.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupModel {
    #[serde(flatten)]
    pub group: GroupResponse,
    /// Every system setting by key, with the value this group uses.
    #[schema(value_type = super::settings::SettingValues)]
    pub effective_config: Value,
    /// Always `null`: the original never loads the keys on these routes.
    #[schema(value_type = Option<Vec<Object>>)]
    pub api_keys: Option<Vec<Value>>,
}

impl GroupModel {
    /// A member of an aggregate: the whole group with its effective settings.
    pub fn full(row: &GroupRow, app_url: &str, settings: &SystemSettings) -> Self {
        let overrides = serde_json::from_str::<Map<String, Value>>(&row.config).unwrap_or_default();
        GroupModel {
            group: GroupResponse::from_row(row, app_url),
            effective_config: effective_config(settings, &overrides),
            api_keys: None,
        }
    }

    /// An entry of `GET /api/groups/list`: id and names, every other field at its zero value,
    /// as GPT-Load's select of three columns leaves them.
    pub fn brief(row: &GroupRow) -> GroupBrief {
        const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
        GroupBrief {
            id: row.id,
            effective_config: SETTINGS
                .iter()
                .map(|def| (def.key.to_string(), zero_of(def.kind)))
                .collect(),
            name: row.name.clone(),
            endpoint: String::new(),
            display_name: row.display_name.clone(),
            proxy_keys: String::new(),
            description: String::new(),
            group_type: String::new(),
            upstreams: None,
            validation_endpoint: String::new(),
            channel_type: String::new(),
            sort: 0,
            test_model: String::new(),
            param_overrides: None,
            model_redirect_rules: None,
            model_redirect_strict: false,
            config: None,
            header_rules: None,
            api_keys: None,
            last_validated_at: None,
            created_at: ZERO_TIME.into(),
            updated_at: ZERO_TIME.into(),
        }
    }
}

/// An entry of `GET /api/groups/list`: GPT-Load's group model with only `id`, `name` and
/// `display_name` read, every other field at its zero value (`null` for its JSON columns).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupBrief {
    pub id: i64,
    /// Every setting at its zero value (0, false or "").
    #[schema(value_type = super::settings::SettingValues)]
    pub effective_config: Map<String, Value>,
    pub name: String,
    pub endpoint: String,
    pub display_name: String,
    pub proxy_keys: String,
    pub description: String,
    pub group_type: String,
    #[schema(value_type = Option<Vec<UpstreamSpec>>)]
    pub upstreams: Option<Value>,
    pub validation_endpoint: String,
    pub channel_type: String,
    pub sort: i32,
    pub test_model: String,
    #[schema(value_type = Option<Object>)]
    pub param_overrides: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub model_redirect_rules: Option<Value>,
    pub model_redirect_strict: bool,
    #[schema(value_type = Option<super::settings::GroupConfig>)]
    pub config: Option<Value>,
    #[schema(value_type = Option<Vec<HeaderRuleSpec>>)]
    pub header_rules: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub api_keys: Option<Vec<Value>>,
    pub last_validated_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn zero_of(kind: SettingKind) -> Value {
    match kind {
        SettingKind::Int => Value::from(0),
        SettingKind::Bool => Value::Bool(false),
        SettingKind::Str => Value::String(String::new()),
    }
}

/// Every setting: the group's valid override where it has one, else the system value.
fn effective_config(settings: &SystemSettings, overrides: &Map<String, Value>) -> Value {
    SETTINGS
        .iter()
        .map(|def| {
            let value = match overrides.get(def.key) {
                Some(v) if def.group_overridable && validate_value(def, v).is_ok() => v.clone(),
                _ => settings.get(def.id).clone(),
            };
            (def.key.to_string(), value)
        })
        .collect::<Map<String, Value>>()
        .into()
}
