//! System settings: list by category, and validated updates that apply without a restart.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use gpt_load_actors::settings::{find, validate_value, SETTINGS};
use serde_json::{json, Map, Value};

use super::{ok, ok_message};
use crate::http::error::ApiError;
use crate::state::AppState;

/// `GET /api/settings`: settings grouped by category, in GPT-Load's order.
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.snapshot.load();
    let mut categories: Vec<(&str, Vec<Value>)> = Vec::new();
    for def in SETTINGS.iter() {
        let item = json!({
            "key": def.key,
            "name": def.name,
            "value": snapshot.settings.get(def.key),
            "type": def.kind.as_str(),
            "default_value": def.default,
            "description": def.description,
            "category": def.category,
            "min_value": def.min,
            "required": def.required,
        });
        match categories
            .iter_mut()
            .find(|(name, _)| *name == def.category)
        {
            Some((_, items)) => items.push(item),
            None => categories.push((def.category, vec![item])),
        }
    }
    Ok(ok(categories
        .into_iter()
        .map(|(name, settings)| json!({"category_name": name, "settings": settings}))
        .collect::<Vec<_>>()))
}

/// `PUT /api/settings` with a flat `{key: value}` object. Every value is validated before any
/// is written; an invalid one is a 400 naming the setting.
pub async fn update(
    _admin: super::Admin,
    state: web::Data<AppState>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let mut values = HashMap::new();
    for (key, value) in body.iter() {
        let def =
            find(key).ok_or_else(|| ApiError::Validation(format!("unknown setting '{key}'")))?;
        let stored = validate_value(def, value).map_err(|e| ApiError::Validation(e.to_string()))?;
        values.insert(key.clone(), stored);
    }
    if !values.is_empty() {
        state
            .repo
            .update_settings(values.into_iter().collect())
            .await?;
        state.reload_config().await?;
    }
    Ok(ok_message("Settings updated successfully. Configuration will be reloaded in the background across all instances."))
}
