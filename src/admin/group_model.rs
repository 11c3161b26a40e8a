//! GPT-Load's raw group model as two of its routes return it (`GET /api/groups/list` and the
//! `group` of each aggregate member): the group response plus `effective_config` (every setting)
//! and `api_keys` (never loaded there, so `null`). See docs/compatibility.md.

use gpt_load_actors::settings::{validate_value, SettingKind, SystemSettings, SETTINGS};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::groups::GroupResponse;
use crate::db::models::GroupRow;

/// A group in the shape of GPT-Load's database model.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupModel {
    #[serde(flatten)]
    pub group: GroupResponse,
    /// Every system setting by key, with the value this group uses.
    #[schema(value_type = Object)]
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
    pub fn brief(row: &GroupRow) -> Value {
        let zero_config: Map<String, Value> = SETTINGS
            .iter()
            .map(|def| (def.key.to_string(), zero_of(def.kind)))
            .collect();
        serde_json::json!({
            "id": row.id,
            "effective_config": zero_config,
            "name": row.name,
            "endpoint": "",
            "display_name": row.display_name,
            "proxy_keys": "",
            "description": "",
            "group_type": "",
            "upstreams": null,
            "validation_endpoint": "",
            "channel_type": "",
            "sort": 0,
            "test_model": "",
            "param_overrides": null,
            "model_redirect_rules": null,
            "model_redirect_strict": false,
            "config": null,
            "header_rules": null,
            "api_keys": null,
            "last_validated_at": null,
            "created_at": "0001-01-01T00:00:00Z",
            "updated_at": "0001-01-01T00:00:00Z",
        })
    }
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
