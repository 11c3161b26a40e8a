//! Groups: create, list, update, delete, with the validation rules of GPT-Load.

use actix_web::http::header::HeaderName;
use actix_web::web;
use gpt_load_actors::domain::HeaderRule;
use gpt_load_actors::settings::validate_group_overrides;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::group_model::{GroupBrief, GroupModel};
pub use super::group_model::{GroupResponse, HeaderRuleSpec, UpstreamSpec};
use super::i18n::{t, tf, Msg};
use super::response::{done, ok, Envelope, ErrorBody, NoData, Reply};
use super::settings::setting_error_text;
use super::state::AdminState;
use super::{parse_id, require_group};
use crate::admin::error::AdminError;
use crate::channel::CHANNEL_TYPES;
use crate::db::models::{GroupRow, GroupValues};
use crate::db::repo::now;
use crate::db::DbError;

/// Fields a create or update request may carry; absent fields are left as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GroupInput {
    /// `^[a-z0-9_-]{1,100}$` after trimming.
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `standard` (default) or `aggregate`; ignored on update.
    pub group_type: Option<String>,
    /// Required for standard groups: at least one entry, one with weight > 0.
    #[schema(value_type = Option<Vec<UpstreamSpec>>)]
    pub upstreams: Option<Value>,
    /// One of `GET /api/channel-types`.
    pub channel_type: Option<String>,
    #[serde(default, deserialize_with = "super::response::whole_opt")]
    pub sort: Option<i32>,
    /// Model used by key validation; required for standard groups.
    pub test_model: Option<String>,
    /// Custom validation path: empty, or starts with `/` and has no `://`.
    pub validation_endpoint: Option<String>,
    /// Top-level JSON fields set on every proxied JSON body.
    #[schema(value_type = Option<Object>)]
    pub param_overrides: Option<Value>,
    /// Source model → target model (non-empty strings).
    #[schema(value_type = Option<Object>)]
    pub model_redirect_rules: Option<Value>,
    pub model_redirect_strict: Option<bool>,
    /// Overrides of the group-overridable settings (see `GET /api/groups/config-options`).
    #[schema(value_type = Option<super::settings::GroupConfigInput>)]
    pub config: Option<Value>,
    pub header_rules: Option<Vec<HeaderRuleSpec>>,
    /// Group proxy keys, comma separated.
    pub proxy_keys: Option<String>,
}

/// The request bodies of group create and update, as JSON Schema written next to the rules of
/// [`apply`] they state (the derived [`GroupInput`] cannot say which fields a standard group
/// needs, nor the forms the server accepts); `openapi::document` puts them in place.
pub struct GroupCreate;
/// See [`GroupCreate`].
pub struct GroupUpdate;

macro_rules! placeholder_schema {
    ($($name:ident),*) => {$(
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new().build().into()
            }
        }
        impl ToSchema for $name {}
    )*};
}
placeholder_schema!(GroupCreate, GroupUpdate);

/// `GroupCreate` and `GroupUpdate` by component name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let nonblank = json!({"type": "string", "pattern": "\\S"});
    let upstreams = json!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "pattern": "^\\s*https?://"},
                "weight": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": i64::MAX}, {"type": "null"}]},
            },
        },
        // At least one upstream carries traffic.
        "contains": {
            "type": "object",
            "required": ["weight"],
            "properties": {"weight": {"type": "integer", "minimum": 1}},
        },
        "description": "At least one entry, one with weight > 0.",
    });
    let redirects = json!({
        "type": "object",
        "propertyNames": {"pattern": "\\S"},
        "additionalProperties": nonblank,
        "description": "Source model → target model (non-blank strings).",
    });
    let header_rules = json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["key"],
            "properties": {
                // An HTTP header name (a token), or blank to skip the rule.
                "key": {"type": "string", "pattern": "^\\s*[!#$%&'*+.^_`|~0-9A-Za-z-]*\\s*$"},
                "value": {"type": "string"},
                "action": {"type": "string", "description": "`set` or `remove`"},
            },
        },
        "description": "Header names must differ (ignoring case).",
    });
    let mut common = json!({
        "name": {"type": "string", "pattern": "^\\s*[a-z0-9_-]{1,100}\\s*$"},
        "display_name": {"type": "string"},
        "description": {"type": "string"},
        "channel_type": {"type": "string", "enum": CHANNEL_TYPES},
        "sort": {"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX},
        "param_overrides": {"type": "object"},
        "model_redirect_strict": {"type": "boolean"},
        "config": {"$ref": "#/components/schemas/GroupConfigInput"},
        "header_rules": header_rules,
        "proxy_keys": {"type": "string"},
    });
    let endpoint = json!({
        "type": "string",
        "pattern": "^\\s*(/((?!://).)*)?\\s*$",
        "description": "Empty, or a path starting with `/` without `://`.",
    });
    // Every field is optional and `null` counts as absent, except where creating needs it.
    let nullable = |schema: &Value| json!({"anyOf": [schema, {"type": "null"}]});
    let nullable_all = |fields: Value, except: &[&str]| -> Value {
        let Value::Object(map) = fields else {
            return fields;
        };
        map.into_iter()
            .map(|(k, v)| {
                let v = if except.contains(&k.as_str()) {
                    v
                } else {
                    nullable(&v)
                };
                (k, v)
            })
            .collect::<Map<String, Value>>()
            .into()
    };
    let mut update = common.clone();
    update["group_type"] = json!({"type": "string", "description": "Ignored on update."});
    update["upstreams"] = upstreams.clone();
    update["model_redirect_rules"] = redirects.clone();
    update["test_model"] = json!({"type": "string", "description": "Blank keeps the current one."});
    update["validation_endpoint"] = endpoint.clone();
    common["group_type"] =
        json!({"type": "string", "enum": ["standard", "aggregate"], "default": "standard"});
    let mut standard = common.clone();
    standard["upstreams"] = upstreams;
    standard["test_model"] = nonblank;
    standard["validation_endpoint"] = endpoint;
    standard["model_redirect_rules"] = redirects;
    let mut aggregate = common;
    aggregate["group_type"] = json!({"const": "aggregate"});
    aggregate["model_redirect_rules"] = json!({
        "type": "object",
        "maxProperties": 0,
        "description": "Aggregates have no redirects.",
    });
    let standard = nullable_all(
        standard,
        &["name", "channel_type", "upstreams", "test_model"],
    );
    let aggregate = nullable_all(aggregate, &["name", "channel_type", "group_type"]);
    let update = nullable_all(update, &[]);
    vec![
        (
            "GroupCreate",
            json!({
                "oneOf": [
                    {
                        "title": "Standard group",
                        "type": "object",
                        "required": ["name", "channel_type", "upstreams", "test_model"],
                        "properties": standard,
                        "not": {"required": ["group_type"], "properties": {"group_type": {"const": "aggregate"}}},
                    },
                    {
                        "title": "Aggregate group",
                        "type": "object",
                        "required": ["name", "channel_type", "group_type"],
                        "properties": aggregate,
                    },
                ],
            }),
        ),
        (
            "GroupUpdate",
            json!({"type": "object", "properties": update}),
        ),
    ]
}

/// The current `app_url` setting.
pub fn app_url(state: &AdminState) -> String {
    state.snapshot.load().settings.app_url()
}

/// List groups, `sort` ascending then newest first.
#[utoipa::path(get, path = "/api/groups", tag = "groups",
    responses((status = 200, body = Envelope<Vec<GroupResponse>>), (status = 401, body = ErrorBody)))]
pub async fn list(_admin: super::Admin, state: web::Data<AdminState>) -> Reply<Vec<GroupResponse>> {
    let url = app_url(&state);
    let rows = state.repo.groups().await?;
    ok(rows
        .iter()
        .map(|r| GroupResponse::from_row(r, &url))
        .collect())
}

/// List groups as GPT-Load's raw model with only `id`, `name` and `display_name` filled in (every
/// other field at its zero value), in id order.
#[utoipa::path(get, path = "/api/groups/list", tag = "groups",
    responses((status = 200, body = Envelope<Vec<GroupBrief>>), (status = 401, body = ErrorBody)))]
pub async fn list_brief(
    _admin: super::Admin,
    state: web::Data<AdminState>,
) -> Reply<Vec<GroupBrief>> {
    let mut rows = state.repo.groups().await?;
    rows.sort_by_key(|r| r.id);
    ok(rows.iter().map(GroupModel::brief).collect())
}

/// Create a group.
#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = GroupCreate,
    responses((status = 200, body = Envelope<GroupResponse>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody)))]
pub async fn create(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    input: web::Json<GroupInput>,
) -> Reply<GroupResponse> {
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
    ok(GroupResponse::from_row(&row, &app_url(&state)))
}

/// Update a group: only the fields present change.
#[utoipa::path(put, path = "/api/groups/{id}", tag = "groups", request_body = GroupUpdate,
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, body = Envelope<GroupResponse>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    input: web::Json<GroupInput>,
) -> Reply<GroupResponse> {
    let id = parse_id(&id, Msg::InvalidGroupId)?;
    let row = require_group(&state, id).await?;
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
            return Err(AdminError::Validation(tf(
                Msg::GroupReferenced,
                &[("count", &parents)],
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
    ok(GroupResponse::from_row(&row, &app_url(&state)))
}

/// Delete a group, its keys and its aggregate memberships (request logs and stats are kept).
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, body = Envelope<NoData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Reply<NoData> {
    let id = parse_id(&id, Msg::InvalidGroupId)?;
    require_group(&state, id).await?;
    state.repo.delete_group(id).await?;
    state.pool.remove_group(id);
    state.reload_config_local().await?;
    state
        .announce(gpt_load_actors::cluster::ClusterEvent::GroupDeleted { group_id: id })
        .await;
    done(t(Msg::GroupDeleted))
}

/// Maps a unique-name violation to 409 with a clear message.
pub fn name_conflict(err: DbError) -> AdminError {
    match err {
        DbError::Duplicate => AdminError::Duplicate(t(Msg::GroupNameTaken)),
        other => other.into(),
    }
}

/// The writable columns of a stored group.
pub fn values_of(row: &GroupRow) -> GroupValues {
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
fn apply(draft: &mut GroupValues, input: GroupInput, creating: bool) -> Result<(), AdminError> {
    let invalid = |msg: Msg| AdminError::Validation(t(msg));
    if creating && !matches!(draft.group_type.as_str(), "standard" | "aggregate") {
        return Err(invalid(Msg::GroupTypeInvalid));
    }
    let aggregate = draft.group_type == "aggregate";
    if let Some(name) = input.name {
        draft.name = name.trim().to_string();
    }
    if !valid_name(&draft.name) {
        return Err(invalid(Msg::GroupNameInvalid));
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
        return Err(AdminError::Validation(tf(
            Msg::ChannelTypeInvalid,
            &[("types", &CHANNEL_TYPES.join(", "))],
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
            _ => return Err(invalid(Msg::ParamOverridesNotObject)),
        };
    }
    if let Some(v) = input.model_redirect_rules {
        draft.model_redirect_rules = validate_redirects(&v)?;
    }
    if let Some(v) = input.config {
        let map = match v {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            _ => return Err(invalid(Msg::ConfigNotObject)),
        };
        let clean = validate_group_overrides(&map).map_err(|e| {
            AdminError::Validation(tf(
                Msg::ConfigInvalid,
                &[("reason", &setting_error_text(&e, true))],
            ))
        })?;
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
            return Err(invalid(Msg::AggregateNoRedirect));
        }
    } else {
        if draft.test_model.trim().is_empty() {
            return Err(invalid(Msg::TestModelRequired));
        }
        validate_upstreams(&serde_json::from_str(&draft.upstreams).unwrap_or(Value::Null))?;
        let ep = &draft.validation_endpoint;
        if !ep.is_empty() && (!ep.starts_with('/') || ep.contains("://")) {
            return Err(invalid(Msg::ValidationEndpointInvalid));
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

fn validate_upstreams(value: &Value) -> Result<String, AdminError> {
    let invalid = |msg: Msg| AdminError::Validation(t(msg));
    let items = value
        .as_array()
        .ok_or_else(|| invalid(Msg::UpstreamsNotArray))?;
    if items.is_empty() {
        return Err(invalid(Msg::UpstreamsEmpty));
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
            return Err(invalid(Msg::UpstreamUrlInvalid));
        }
        let weight = match item.get("weight") {
            None | Some(Value::Null) => 0,
            // A whole float (`2.0`) is the integer it spells, as for every integer field.
            Some(w) => w
                .as_i64()
                .or_else(|| {
                    w.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| invalid(Msg::UpstreamWeightInvalid))?,
        };
        if weight < 0 {
            return Err(invalid(Msg::UpstreamWeightNegative));
        }
        any_positive |= weight > 0;
        out.push(json!({"url": url, "weight": weight}));
    }
    if !any_positive {
        return Err(invalid(Msg::UpstreamNoPositiveWeight));
    }
    Ok(Value::Array(out).to_string())
}

fn validate_redirects(value: &Value) -> Result<String, AdminError> {
    let map = match value {
        Value::Null => return Ok("{}".into()),
        Value::Object(map) => map,
        _ => return Err(AdminError::Validation(t(Msg::RedirectRulesNotObject))),
    };
    let mut out = Map::new();
    for (from, to) in map {
        let to = to.as_str().map(str::trim).unwrap_or_default();
        if from.trim().is_empty() || to.is_empty() {
            return Err(AdminError::Validation(t(Msg::RedirectRuleEmpty)));
        }
        out.insert(from.trim().to_string(), Value::String(to.to_string()));
    }
    Ok(Value::Object(out).to_string())
}

fn validate_header_rules(rules: Vec<HeaderRuleSpec>) -> Result<String, AdminError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for rule in rules {
        let key = rule.key.trim();
        if key.is_empty() {
            continue;
        }
        if HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(AdminError::Validation(tf(
                Msg::HeaderNameInvalid,
                &[("name", &key)],
            )));
        }
        let canonical = canonical_header(key);
        if !seen.insert(canonical.to_ascii_lowercase()) {
            return Err(AdminError::Validation(tf(
                Msg::DuplicateHeader,
                &[("name", &canonical)],
            )));
        }
        out.push(HeaderRule {
            key: canonical,
            value: rule.value,
            action: rule.action,
        });
    }
    serde_json::to_string(&out).map_err(|e| AdminError::Internal(e.to_string()))
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
            HeaderRuleSpec {
                key: " x-foo ".into(),
                value: "1".into(),
                action: "set".into(),
            },
            HeaderRuleSpec {
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
            HeaderRuleSpec {
                key: "x-foo".into(),
                value: "1".into(),
                action: "set".into(),
            },
            HeaderRuleSpec {
                key: "X-FOO".into(),
                value: "2".into(),
                action: "remove".into(),
            },
        ];
        assert!(validate_header_rules(dup).is_err());
    }
}
