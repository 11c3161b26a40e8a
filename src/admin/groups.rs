//! Groups: create, list, update, delete, with the validation rules of GPT-Load.

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpResponse};
use gpt_load_actors::domain::HeaderRule;
use gpt_load_actors::key_pool::RemoveGroup;
use gpt_load_actors::settings::validate_group_overrides;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{ok, ok_message, parse_id, timestamp, timestamp_opt};
use crate::channel::CHANNEL_TYPES;
use crate::db::models::{GroupRow, GroupValues};
use crate::db::repo::{now, Repo};
use crate::db::DbError;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Fields a create or update request may carry; absent fields are left as they are.
#[derive(Debug, Default, Deserialize)]
pub struct GroupInput {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub group_type: Option<String>,
    pub upstreams: Option<Value>,
    pub channel_type: Option<String>,
    pub sort: Option<i32>,
    pub test_model: Option<String>,
    pub validation_endpoint: Option<String>,
    pub param_overrides: Option<Value>,
    pub model_redirect_rules: Option<Value>,
    pub model_redirect_strict: Option<bool>,
    pub config: Option<Value>,
    pub header_rules: Option<Vec<HeaderRule>>,
    pub proxy_keys: Option<String>,
}

/// The JSON GPT-Load returns for a group.
pub fn group_json(row: &GroupRow, app_url: &str) -> Value {
    let parse =
        |text: &str, fallback: Value| serde_json::from_str::<Value>(text).unwrap_or(fallback);
    json!({
        "id": row.id,
        "name": row.name,
        "endpoint": format!("{}/proxy/{}", app_url.trim_end_matches('/'), row.name),
        "display_name": row.display_name,
        "description": row.description,
        "group_type": row.group_type,
        "upstreams": parse(&row.upstreams, json!([])),
        "channel_type": row.channel_type,
        "sort": row.sort,
        "test_model": row.test_model,
        "validation_endpoint": row.validation_endpoint,
        "param_overrides": parse(&row.param_overrides, json!({})),
        "model_redirect_rules": parse(&row.model_redirect_rules, json!({})),
        "model_redirect_strict": row.model_redirect_strict,
        "config": parse(&row.config, json!({})),
        "header_rules": parse(&row.header_rules, json!([])),
        "proxy_keys": row.proxy_keys,
        "last_validated_at": timestamp_opt(&row.last_validated_at),
        "created_at": timestamp(&row.created_at),
        "updated_at": timestamp(&row.updated_at),
    })
}

fn app_url(state: &AppState) -> String {
    state.snapshot.load().settings.app_url()
}

/// `GET /api/groups`.
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let url = app_url(&state);
    let rows = state.repo.groups().await?;
    Ok(ok(rows
        .iter()
        .map(|r| group_json(r, &url))
        .collect::<Vec<_>>()))
}

/// `GET /api/groups/list`: ids and names only.
pub async fn list_brief(
    _admin: super::Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rows = state.repo.groups().await?;
    Ok(ok(rows
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "display_name": r.display_name}))
        .collect::<Vec<_>>()))
}

/// `POST /api/groups`.
pub async fn create(
    _admin: super::Admin,
    state: web::Data<AppState>,
    input: web::Json<GroupInput>,
) -> Result<HttpResponse, ApiError> {
    let input = input.into_inner();
    let group_type = input
        .group_type
        .clone()
        .unwrap_or_else(|| "standard".into());
    let mut draft = GroupValues {
        name: String::new(),
        display_name: String::new(),
        proxy_keys: String::new(),
        description: String::new(),
        group_type,
        upstreams: "[]".into(),
        validation_endpoint: String::new(),
        channel_type: String::new(),
        sort: 0,
        test_model: String::new(),
        param_overrides: "{}".into(),
        config: "{}".into(),
        header_rules: "[]".into(),
        model_redirect_rules: "{}".into(),
        model_redirect_strict: false,
        updated_at: now(),
    };
    apply(&mut draft, input, true)?;
    let row = state
        .repo
        .insert_group(draft)
        .await
        .map_err(name_conflict)?;
    state.reload_config().await?;
    Ok(ok(group_json(&row, &app_url(&state))))
}

/// `PUT /api/groups/{id}`: partial update.
pub async fn update(
    _admin: super::Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    input: web::Json<GroupInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "group")?;
    let row = find(&state.repo, id).await?;
    let mut draft = values_of(&row);
    let before = (
        draft.channel_type.clone(),
        draft.validation_endpoint.clone(),
    );
    apply(&mut draft, input.into_inner(), false)?;
    if before
        != (
            draft.channel_type.clone(),
            draft.validation_endpoint.clone(),
        )
    {
        let parents = state.repo.parent_aggregate_count(id).await?;
        if parents > 0 {
            return Err(ApiError::Validation(format!(
                "This group is referenced by {parents} aggregate group(s); its channel type and validation endpoint cannot change"
            )));
        }
    }
    draft.updated_at = now();
    let row = state
        .repo
        .update_group(id, draft)
        .await
        .map_err(name_conflict)?;
    state.reload_config().await?;
    Ok(ok(group_json(&row, &app_url(&state))))
}

/// `DELETE /api/groups/{id}`: the group, its keys and its memberships.
pub async fn delete(
    _admin: super::Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "group")?;
    find(&state.repo, id).await?;
    state.repo.delete_group(id).await?;
    state.pool.do_send(RemoveGroup { group_id: id });
    state.reload_config().await?;
    Ok(ok_message("Group and related keys deleted successfully"))
}

async fn find(repo: &Repo, id: i64) -> Result<GroupRow, ApiError> {
    repo.group(id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Group not found".into()))
}

fn name_conflict(err: DbError) -> ApiError {
    match err {
        DbError::Duplicate => ApiError::Duplicate("A group with this name already exists".into()),
        other => other.into(),
    }
}

fn values_of(row: &GroupRow) -> GroupValues {
    GroupValues {
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        proxy_keys: row.proxy_keys.clone(),
        description: row.description.clone(),
        group_type: row.group_type.clone(),
        upstreams: row.upstreams.clone(),
        validation_endpoint: row.validation_endpoint.clone(),
        channel_type: row.channel_type.clone(),
        sort: row.sort,
        test_model: row.test_model.clone(),
        param_overrides: row.param_overrides.clone(),
        config: row.config.clone(),
        header_rules: row.header_rules.clone(),
        model_redirect_rules: row.model_redirect_rules.clone(),
        model_redirect_strict: row.model_redirect_strict,
        updated_at: row.updated_at,
    }
}

/// Applies the present fields of `input` to `draft` and validates the result as a whole.
fn apply(draft: &mut GroupValues, input: GroupInput, creating: bool) -> Result<(), ApiError> {
    let invalid = |msg: String| ApiError::Validation(msg);
    if creating && !matches!(draft.group_type.as_str(), "standard" | "aggregate") {
        return Err(invalid(
            "group_type must be 'standard' or 'aggregate'".into(),
        ));
    }
    let aggregate = draft.group_type == "aggregate";
    if let Some(name) = input.name {
        draft.name = name.trim().to_string();
    }
    if !valid_name(&draft.name) {
        return Err(invalid(
            "Invalid group name: use 1-100 lowercase letters, digits, '_' or '-'".into(),
        ));
    }
    if let Some(v) = input.display_name {
        draft.display_name = v.trim().to_string();
    }
    if let Some(v) = input.description {
        draft.description = v.trim().to_string();
    }
    if let Some(v) = input.proxy_keys {
        draft.proxy_keys = v.trim().to_string();
    }
    if let Some(v) = input.sort {
        draft.sort = v;
    }
    if let Some(v) = input.model_redirect_strict {
        draft.model_redirect_strict = v;
    }
    if let Some(v) = input.channel_type {
        if creating || !aggregate {
            draft.channel_type = v.trim().to_string();
        }
    }
    if !CHANNEL_TYPES.contains(&draft.channel_type.as_str()) {
        return Err(invalid(format!(
            "Invalid channel type. Supported types: {}",
            CHANNEL_TYPES.join(", ")
        )));
    }
    if let Some(v) = input
        .test_model
        .filter(|v| creating || !v.trim().is_empty())
    {
        draft.test_model = v.trim().to_string();
    }
    if let Some(v) = input.validation_endpoint {
        draft.validation_endpoint = v.trim().to_string();
    }
    if let Some(v) = input.upstreams {
        draft.upstreams = validate_upstreams(&v)?;
    }
    if let Some(v) = input.param_overrides {
        draft.param_overrides = match v {
            Value::Null => "{}".into(),
            Value::Object(map) => Value::Object(map).to_string(),
            _ => return Err(invalid("param_overrides must be a JSON object".into())),
        };
    }
    if let Some(v) = input.model_redirect_rules {
        draft.model_redirect_rules = validate_redirects(&v)?;
    }
    if let Some(v) = input.config {
        let map = match v {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            _ => {
                return Err(invalid(
                    "Invalid config format: config must be a JSON object".into(),
                ))
            }
        };
        let clean = validate_group_overrides(&map)
            .map_err(|e| invalid(format!("Invalid config format: {e}")))?;
        draft.config = Value::Object(clean).to_string();
    }
    if let Some(rules) = input.header_rules {
        draft.header_rules = validate_header_rules(rules)?;
    }

    if aggregate {
        draft.upstreams = "[]".into();
        draft.test_model = "-".into();
        draft.validation_endpoint = String::new();
        if draft.model_redirect_rules != "{}" {
            return Err(invalid(
                "Aggregate groups do not support model redirect rules".into(),
            ));
        }
    } else {
        if draft.test_model.trim().is_empty() {
            return Err(invalid("test_model is required".into()));
        }
        validate_upstreams(&serde_json::from_str(&draft.upstreams).unwrap_or(Value::Null))?;
        let ep = &draft.validation_endpoint;
        if !ep.is_empty() && (!ep.starts_with('/') || ep.contains("://")) {
            return Err(invalid(
                "validation_endpoint must be a path starting with '/'".into(),
            ));
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn validate_upstreams(value: &Value) -> Result<String, ApiError> {
    let invalid = |msg: &str| ApiError::Validation(msg.to_string());
    let items = value
        .as_array()
        .ok_or_else(|| invalid("upstreams must be a JSON array"))?;
    if items.is_empty() {
        return Err(invalid("At least one upstream is required"));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut any_positive = false;
    for item in items {
        let url = item
            .get("url")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if url.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "Each upstream needs a url starting with http:// or https://",
            ));
        }
        let weight = match item.get("weight") {
            None | Some(Value::Null) => 0,
            Some(w) => w
                .as_i64()
                .ok_or_else(|| invalid("Upstream weight must be an integer"))?,
        };
        if weight < 0 {
            return Err(invalid("Upstream weight must not be negative"));
        }
        any_positive |= weight > 0;
        out.push(json!({"url": url, "weight": weight}));
    }
    if !any_positive {
        return Err(invalid("At least one upstream must have a weight above 0"));
    }
    Ok(Value::Array(out).to_string())
}

fn validate_redirects(value: &Value) -> Result<String, ApiError> {
    let map = match value {
        Value::Null => return Ok("{}".into()),
        Value::Object(map) => map,
        _ => {
            return Err(ApiError::Validation(
                "model_redirect_rules must be a JSON object".into(),
            ))
        }
    };
    let mut out = Map::new();
    for (from, to) in map {
        let to = to.as_str().map(str::trim).unwrap_or_default();
        if from.trim().is_empty() || to.is_empty() {
            return Err(ApiError::Validation(
                "Model redirect rules need a non-empty source and target".into(),
            ));
        }
        out.insert(from.trim().to_string(), Value::String(to.to_string()));
    }
    Ok(Value::Object(out).to_string())
}

fn validate_header_rules(rules: Vec<HeaderRule>) -> Result<String, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for rule in rules {
        let key = rule.key.trim();
        if key.is_empty() {
            continue;
        }
        if HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(ApiError::Validation(format!("Invalid header name: {key}")));
        }
        let canonical = canonical_header(key);
        if !seen.insert(canonical.to_ascii_lowercase()) {
            return Err(ApiError::Validation(format!(
                "Duplicate header: {canonical}"
            )));
        }
        out.push(HeaderRule {
            key: canonical,
            value: rule.value,
            action: rule.action,
        });
    }
    serde_json::to_string(&out).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `x-foo-bar` → `X-Foo-Bar`.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert!(valid_name("openai_1-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("Upper"));
        assert!(!valid_name("with space"));
        assert!(!valid_name(&"a".repeat(101)));
    }

    #[test]
    fn upstreams_need_a_positive_weight_and_http_urls() {
        assert!(validate_upstreams(&json!([{"url": "https://a", "weight": 1}])).is_ok());
        assert!(validate_upstreams(&json!([])).is_err());
        assert!(validate_upstreams(&json!([{"url": "ftp://a", "weight": 1}])).is_err());
        assert!(validate_upstreams(&json!([{"url": "https://a", "weight": 0}])).is_err());
        assert!(validate_upstreams(
            &json!([{"url": "https://a", "weight": -1}, {"url": "https://b", "weight": 1}])
        )
        .is_err());
    }

    #[test]
    fn header_rules_are_canonical_and_unique() {
        let rules = vec![
            HeaderRule {
                key: " x-foo ".into(),
                value: "1".into(),
                action: "set".into(),
            },
            HeaderRule {
                key: "".into(),
                value: "".into(),
                action: "set".into(),
            },
        ];
        assert_eq!(
            validate_header_rules(rules).unwrap(),
            r#"[{"key":"X-Foo","value":"1","action":"set"}]"#
        );
        let dup = vec![
            HeaderRule {
                key: "x-foo".into(),
                value: "1".into(),
                action: "set".into(),
            },
            HeaderRule {
                key: "X-FOO".into(),
                value: "2".into(),
                action: "remove".into(),
            },
        ];
        assert!(validate_header_rules(dup).is_err());
    }
}
