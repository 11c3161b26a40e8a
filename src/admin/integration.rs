//! Integration info for one-click import into tools such as New API: which groups a proxy key
//! may use, and under which path. Authenticated by the proxy key, not the admin key.

use actix_web::{web, HttpRequest};
use gpt_load_actors::group_registry::{GroupView, Snapshot};
use serde::Serialize;
use utoipa::ToSchema;

use super::i18n::{t, Msg};
use super::response::{ok, Envelope, ErrorBody, Reply};
use super::state::AdminState;
use crate::admin::error::AdminError;
use crate::channel;
use crate::http::credentials;

/// One group a proxy key can use.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationGroup {
    pub name: String,
    pub display_name: String,
    /// The channel type, or `custom` for an OpenAI-style group whose validation endpoint is not
    /// the channel's default.
    pub channel_type: String,
    /// `/proxy/{name}` (plus the validation endpoint for `custom`); empty in the group-scoped
    /// variant unless `custom`.
    pub path: String,
}

fn describe(group: &GroupView, scoped: bool) -> IntegrationGroup {
    let record = &group.record;
    let endpoint = record.validation_endpoint.trim();
    let custom = matches!(record.channel_type.as_str(), "openai" | "openai-response")
        && !endpoint.is_empty()
        && channel::for_type(&record.channel_type)
            .is_some_and(|c| c.default_validation_endpoint() != endpoint);
    let base = if scoped {
        String::new()
    } else {
        format!("/proxy/{}", record.name)
    };
    IntegrationGroup {
        name: record.name.clone(),
        display_name: record.display_name.clone(),
        channel_type: if custom {
            "custom".into()
        } else {
            record.channel_type.clone()
        },
        path: if custom {
            format!("{base}{endpoint}")
        } else {
            base
        },
    }
}

fn proxy_key(req: &HttpRequest) -> Result<String, AdminError> {
    credentials::extract(req.headers(), req.query_string())
        .ok_or_else(|| AdminError::Validation(t(Msg::ProxyKeyRequired)))
}

fn may_use(snapshot: &Snapshot, group: &GroupView, key: &str) -> bool {
    credentials::matches_any(key, &group.proxy_keys)
        || credentials::matches_any(key, &snapshot.global_proxy_keys)
}

/// Every group the proxy key may use, in list order. The key is read where the proxy reads it:
/// `?key=`, `Authorization: Bearer`, `X-Api-Key` or `X-Goog-Api-Key`.
#[utoipa::path(get, path = "/api/integration/info", tag = "integration",
    security(("proxy_key_query" = []), ("proxy_key_bearer" = []), ("proxy_key_x_api_key" = []),
        ("proxy_key_x_goog_api_key" = [])),
    responses((status = 200, body = Envelope<Vec<IntegrationGroup>>),
        (status = 400, description = "Missing, invalid or unauthorized proxy key", body = ErrorBody)))]
pub async fn global_info(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Reply<Vec<IntegrationGroup>> {
    let key = proxy_key(&req)?;
    let snapshot = state.snapshot.load();
    let mut groups: Vec<&std::sync::Arc<GroupView>> = snapshot
        .groups
        .values()
        .filter(|g| may_use(&snapshot, g, &key))
        .collect();
    if groups.is_empty() {
        return Err(AdminError::Validation(t(Msg::ProxyKeyInvalid)));
    }
    groups.sort_by_key(|g| (g.record.sort, std::cmp::Reverse(g.record.id)));
    ok(groups.into_iter().map(|g| describe(g, false)).collect())
}

/// The one group of the path, when the proxy key may use it (read as for
/// `/api/integration/info`). Answered before the proxy sees the request.
#[utoipa::path(get, path = "/proxy/{group}/api/integration/info", tag = "integration",
    security(("proxy_key_query" = []), ("proxy_key_bearer" = []), ("proxy_key_x_api_key" = []),
        ("proxy_key_x_goog_api_key" = [])),
    params(("group" = String, Path, description = "Group name")),
    responses((status = 200, body = Envelope<Vec<IntegrationGroup>>),
        (status = 400, description = "Missing, invalid or unauthorized proxy key", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn group_info(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Reply<Vec<IntegrationGroup>> {
    let key = proxy_key(&req)?;
    let snapshot = state.snapshot.load();
    let group = snapshot
        .groups
        .get(path.as_str())
        .ok_or_else(|| AdminError::NotFound(t(Msg::GroupNotFound)))?;
    if !may_use(&snapshot, group, &key) {
        return Err(AdminError::Validation(t(Msg::ProxyKeyInvalid)));
    }
    ok(vec![describe(group, true)])
}
