//! System settings: list by category, and validated updates that apply without a restart.

use std::collections::HashMap;

use actix_web::web;
use gpt_load_actors::settings::{
    find, validate_value, SettingDef, SettingError, SettingKey, SettingKind, SETTINGS,
};
use gpt_load_actors::status_codes::SPEC_PATTERN;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::i18n::{setting_text, t, tf, Lang, Msg};
use super::response::{done, ok, Envelope, ErrorBody, NoData, Reply};
use super::state::AdminState;
use crate::admin::error::AdminError;

/// Declares a type whose JSON Schema is written from the settings table by [`schemas`] rather
/// than derived: the document then states each setting's type, bounds and choices exactly as
/// [`validate_value`] checks them. The derived schema is a placeholder that
/// `openapi::document` replaces.
macro_rules! table_schema {
    ($($(#[$doc:meta])* $name:ident,)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new().build().into()
            }
        }

        impl ToSchema for $name {}
    )*};
}

table_schema! {
    /// Body of `PUT /api/settings`: any settings, each with its own type and bounds.
    SettingsUpdate,
    /// A group's `config` overrides: the group-overridable settings, `null` removing one.
    GroupConfigInput,
    /// A group's stored `config` overrides as answered.
    GroupConfig,
    /// Every setting by key with the value a group uses.
    SettingValues,
    /// A setting's value: an integer, boolean or string, per setting.
    SettingValue,
}

/// The JSON Schemas of the [`table_schema!`] types, by component name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let typed = |def: &SettingDef| json!({"type": kind_type(def.kind)});
    let object = |defs: &mut dyn Iterator<Item = (&'static str, Value)>, closed: bool| {
        let properties: Map<String, Value> = defs.map(|(k, v)| (k.to_string(), v)).collect();
        let mut schema = json!({"type": "object", "properties": properties});
        if closed {
            schema["additionalProperties"] = Value::Bool(false);
        }
        schema
    };
    let overridable = || SETTINGS.iter().filter(|d| d.group_overridable);
    vec![
        (
            "SettingsUpdate",
            object(&mut SETTINGS.iter().map(|d| (d.key, input_schema(d))), true),
        ),
        (
            "GroupConfigInput",
            object(
                &mut overridable()
                    .map(|d| (d.key, json!({"anyOf": [input_schema(d), {"type": "null"}]}))),
                true,
            ),
        ),
        (
            "GroupConfig",
            object(&mut overridable().map(|d| (d.key, typed(d))), false),
        ),
        (
            "SettingValues",
            object(&mut SETTINGS.iter().map(|d| (d.key, typed(d))), false),
        ),
        (
            "SettingValue",
            json!({"type": ["integer", "boolean", "string"]}),
        ),
    ]
}

fn kind_type(kind: SettingKind) -> &'static str {
    match kind {
        SettingKind::Int => "integer",
        SettingKind::Bool => "boolean",
        SettingKind::Str => "string",
    }
}

/// What [`validate_value`] accepts for one setting, as JSON Schema.
fn input_schema(def: &SettingDef) -> Value {
    let mut schema = json!({"type": kind_type(def.kind), "description": def.description});
    if let Some(min) = def.min {
        schema["minimum"] = min.into();
    }
    if let Some(max) = def.max {
        schema["maximum"] = max.into();
    }
    match def.id {
        SettingKey::RateLimitScope => schema["enum"] = json!(["model", "key"]),
        SettingKey::FailoverStatusCodes => schema["pattern"] = SPEC_PATTERN.into(),
        // Entries are split at commas and trimmed; at least one must remain.
        SettingKey::ProxyKeys => schema["pattern"] = "[^\\s,]".into(),
        _ if def.required => schema["pattern"] = "\\S".into(),
        _ => {}
    }
    schema
}

/// One setting with its current value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingItem {
    pub key: String,
    /// Localised name.
    pub name: String,
    /// Current typed value: an integer, boolean or string as `type` says.
    #[schema(value_type = SettingValue)]
    pub value: Value,
    /// `int`, `bool` or `string`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The compiled default, as a string (e.g. `"7"`).
    pub default_value: String,
    /// Localised description.
    pub description: String,
    /// Localised category name.
    pub category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_value: Option<i64>,
    pub required: bool,
}

/// The settings of one category, in GPT-Load's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingCategory {
    pub category_name: String,
    pub settings: Vec<SettingItem>,
}

/// The localised category label of a setting.
pub fn category_label(def: &SettingDef) -> String {
    t(match def.category {
        "Request Settings" => Msg::CategoryRequest,
        "Key Configuration" => Msg::CategoryKey,
        _ => Msg::CategoryBasic,
    })
}

/// Localised name and description of a setting.
pub fn setting_label(def: &SettingDef) -> (String, String) {
    match setting_text(def.id, Lang::current()) {
        Some((name, description)) => (name.to_string(), description.to_string()),
        None => (def.name.to_string(), def.description.to_string()),
    }
}

/// A validation failure of a setting value, localised. In a group's `config`, an unknown key
/// reads "unknown config field" as GPT-Load words it.
pub fn setting_error_text(err: &SettingError, in_group_config: bool) -> String {
    match err {
        SettingError::Unknown(key) if in_group_config => {
            tf(Msg::UnknownConfigField, &[("key", key)])
        }
        SettingError::Unknown(key) => tf(Msg::UnknownSetting, &[("key", key)]),
        SettingError::WrongType { key, expected } => {
            let msg = match *expected {
                "an integer" => Msg::SettingNotInteger,
                "a boolean" => Msg::SettingNotBoolean,
                _ => Msg::SettingNotString,
            };
            tf(msg, &[("key", key)])
        }
        SettingError::BelowMin { key, min } => {
            tf(Msg::SettingBelowMin, &[("key", key), ("min", min)])
        }
        SettingError::AboveMax { key, max } => {
            tf(Msg::SettingAboveMax, &[("key", key), ("max", max)])
        }
        SettingError::Required(key) => tf(Msg::SettingRequired, &[("key", key)]),
        SettingError::Invalid { key, reason } => {
            tf(Msg::SettingInvalid, &[("key", key), ("reason", reason)])
        }
        SettingError::NotOverridable(key) => tf(Msg::SettingNotOverridable, &[("key", key)]),
    }
}

/// Settings grouped by category, in GPT-Load's order.
#[utoipa::path(get, path = "/api/settings", tag = "settings",
    responses((status = 200, body = Envelope<Vec<SettingCategory>>), (status = 401, body = ErrorBody)))]
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AdminState>,
) -> Reply<Vec<SettingCategory>> {
    let snapshot = state.snapshot.load();
    let mut categories: Vec<SettingCategory> = Vec::new();
    for def in SETTINGS.iter() {
        let category = category_label(def);
        let (name, description) = setting_label(def);
        let item = SettingItem {
            key: def.key.to_string(),
            name,
            value: snapshot.settings.get(def.id).clone(),
            kind: def.kind.as_str().to_string(),
            default_value: def.default.to_string(),
            description,
            category: category.clone(),
            min_value: def.min,
            required: def.required,
        };
        match categories.iter_mut().find(|c| c.category_name == category) {
            Some(c) => c.settings.push(item),
            None => categories.push(SettingCategory {
                category_name: category,
                settings: vec![item],
            }),
        }
    }
    ok(categories)
}

/// Update settings with a flat `{key: value}` object. Every value is validated before any is
/// written; an invalid one is a 400 naming the setting, and nothing is written.
#[utoipa::path(put, path = "/api/settings", tag = "settings",
    request_body(content = SettingsUpdate, description = "Flat object of setting key → typed value"),
    responses((status = 200, body = Envelope<NoData>),
        (status = 400, description = "Unknown setting, wrong type, out of bounds", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn update(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<Map<String, Value>>,
) -> Reply<NoData> {
    let mut values = HashMap::new();
    for (key, value) in body.iter() {
        let def = find(key).ok_or_else(|| {
            AdminError::Validation(setting_error_text(
                &SettingError::Unknown(key.clone()),
                false,
            ))
        })?;
        let stored = validate_value(def, value)
            .map_err(|e| AdminError::Validation(setting_error_text(&e, false)))?;
        values.insert(key.clone(), stored);
    }
    if !values.is_empty() {
        state
            .repo
            .update_settings(values.into_iter().collect())
            .await?;
        state.reload_config().await?;
    }
    done(t(Msg::SettingsUpdated))
}
