//! Aggregate membership: list, add, reweight and remove an aggregate's member groups, and find
//! the aggregates a group belongs to. Members must be standard groups of the aggregate's channel
//! type that validate with the same endpoint; weights are 0–1000 (0 disables a member).

use std::collections::HashSet;

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::group_model::GroupModel;
use super::groups::app_url;
use super::i18n::{t, tf, Msg};
use super::response::{done, ok, Envelope, ErrorBody, NoData, Reply};
use super::state::AdminState;
use super::{parse_id, require_group};
use crate::admin::error::AdminError;
use crate::channel::effective_validation_endpoint;
use crate::db::models::GroupRow;

/// Largest member weight.
pub const MAX_WEIGHT: i64 = 1000;

/// A member of an aggregate with its key counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubGroupResponse {
    /// The member in GPT-Load's model shape (with `effective_config` and `api_keys`).
    pub group: GroupModel,
    pub weight: i32,
    pub total_keys: i64,
    pub active_keys: i64,
    pub invalid_keys: i64,
}

/// One member to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubGroupInput {
    #[serde(deserialize_with = "super::response::whole")]
    pub group_id: i64,
    /// 0–1000.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(deserialize_with = "super::response::whole")]
    pub weight: i64,
}

/// Body of `POST /api/groups/{id}/sub-groups`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddSubGroupsRequest {
    /// Each group once.
    #[schema(min_items = 1)]
    pub sub_groups: Vec<SubGroupInput>,
}

/// Body of `PUT /api/groups/{id}/sub-groups/{sub_group_id}/weight`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WeightRequest {
    /// 0–1000.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(deserialize_with = "super::response::whole")]
    pub weight: i64,
}

/// An aggregate that includes a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentAggregate {
    pub group_id: i64,
    pub name: String,
    pub display_name: String,
    pub weight: i32,
}

async fn require_aggregate(state: &AdminState, raw_id: &str) -> Result<GroupRow, AdminError> {
    let id = parse_id(raw_id, Msg::InvalidGroupId)?;
    let group = require_group(state, id).await?;
    if group.group_type != "aggregate" {
        return Err(AdminError::BadRequest(t(Msg::NotAggregate)));
    }
    Ok(group)
}

fn check_weight(weight: i64) -> Result<i32, AdminError> {
    if (0..=MAX_WEIGHT).contains(&weight) {
        Ok(weight as i32)
    } else {
        Err(AdminError::Validation(t(Msg::WeightRange)))
    }
}

/// The members of an aggregate (weight-0 members included) with their key counts.
#[utoipa::path(get, path = "/api/groups/{id}/sub-groups", tag = "sub-groups",
    params(("id" = i64, Path, description = "Aggregate group id")),
    responses((status = 200, body = Envelope<Vec<SubGroupResponse>>),
        (status = 400, description = "Not an aggregate group", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Reply<Vec<SubGroupResponse>> {
    let aggregate = require_aggregate(&state, &id).await?;
    let links = state.repo.sub_group_links(aggregate.id).await?;
    let ids: Vec<i64> = links.iter().map(|(id, _)| *id).collect();
    let groups = state.repo.groups_by_ids(&ids).await?;
    let counts = state.repo.key_counts(Some(&ids)).await?;
    let url = app_url(&state);
    let snapshot = state.snapshot.load();
    ok(groups
        .iter()
        .filter_map(|g| {
            let weight = links.iter().find(|(id, _)| *id == g.id)?.1;
            let c = counts.get(&g.id).copied().unwrap_or_default();
            Some(SubGroupResponse {
                group: GroupModel::full(g, &url, &snapshot.settings),
                weight,
                total_keys: c.total,
                active_keys: c.active,
                invalid_keys: c.invalid,
            })
        })
        .collect())
}

/// Add members to an aggregate (all or none).
#[utoipa::path(post, path = "/api/groups/{id}/sub-groups", tag = "sub-groups",
    request_body = AddSubGroupsRequest,
    params(("id" = i64, Path, description = "Aggregate group id")),
    responses((status = 200, body = Envelope<NoData>),
        (status = 400, description = "Invalid member, weight, or already a member", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<AddSubGroupsRequest>,
) -> Reply<NoData> {
    let aggregate = require_aggregate(&state, &id).await?;
    if body.sub_groups.is_empty() {
        return Err(AdminError::Validation(t(Msg::SubGroupsEmpty)));
    }
    let mut members = Vec::with_capacity(body.sub_groups.len());
    let mut seen = HashSet::new();
    for (index, item) in body.sub_groups.iter().enumerate() {
        if item.group_id <= 0 {
            return Err(AdminError::Validation(tf(
                Msg::SubGroupIdRequired,
                &[("index", &index)],
            )));
        }
        let weight = check_weight(item.weight)?;
        if !seen.insert(item.group_id) {
            return Err(AdminError::Validation(tf(
                Msg::SubGroupDuplicate,
                &[("id", &item.group_id)],
            )));
        }
        members.push((item.group_id, weight));
    }
    let ids: Vec<i64> = members.iter().map(|(id, _)| *id).collect();
    let found = state.repo.groups_by_ids(&ids).await?;
    let existing_links = state.repo.sub_group_links(aggregate.id).await?;
    let existing_ids: Vec<i64> = existing_links.iter().map(|(id, _)| *id).collect();
    let existing = state.repo.groups_by_ids(&existing_ids).await?;
    let endpoint =
        |g: &GroupRow| effective_validation_endpoint(&g.channel_type, &g.validation_endpoint);
    let mut reference = existing.first().map(endpoint);
    for id in &ids {
        let Some(group) = found.iter().find(|g| g.id == *id) else {
            return Err(AdminError::Validation(tf(
                Msg::SubGroupMissing,
                &[("id", id)],
            )));
        };
        if group.group_type == "aggregate" {
            return Err(AdminError::Validation(tf(
                Msg::SubGroupIsAggregate,
                &[("id", id)],
            )));
        }
        if group.channel_type != aggregate.channel_type {
            return Err(AdminError::Validation(tf(
                Msg::SubGroupChannelMismatch,
                &[
                    ("id", id),
                    ("found", &group.channel_type),
                    ("expected", &aggregate.channel_type),
                ],
            )));
        }
        let own = endpoint(group);
        match &reference {
            Some(expected) if *expected != own => {
                return Err(AdminError::Validation(tf(
                    Msg::SubGroupEndpointMismatch,
                    &[("id", id), ("found", &own), ("expected", expected)],
                )))
            }
            Some(_) => {}
            None => reference = Some(own),
        }
        if existing_ids.contains(id) {
            return Err(AdminError::BadRequest(tf(
                Msg::SubGroupExists,
                &[("id", id)],
            )));
        }
    }
    state.repo.add_sub_groups(aggregate.id, &members).await?;
    state.reload_config().await?;
    done(t(Msg::SubGroupsAdded))
}

/// Change a member's weight.
#[utoipa::path(put, path = "/api/groups/{id}/sub-groups/{sub_group_id}/weight", tag = "sub-groups",
    request_body = WeightRequest,
    params(("id" = i64, Path, description = "Aggregate group id"),
        ("sub_group_id" = i64, Path, description = "Member group id")),
    responses((status = 200, body = Envelope<NoData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "Unknown group or not a member", body = ErrorBody)))]
pub async fn update_weight(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
    body: web::Json<WeightRequest>,
) -> Reply<NoData> {
    let (id, sub) = path.into_inner();
    let member = parse_id(&sub, Msg::InvalidSubGroupId)?;
    let aggregate = require_aggregate(&state, &id).await?;
    let weight = check_weight(body.weight)?;
    if !state
        .repo
        .set_sub_group_weight(aggregate.id, member, weight)
        .await?
    {
        return Err(AdminError::NotFound(t(Msg::SubGroupNotFound)));
    }
    state.reload_config().await?;
    done(t(Msg::SubGroupWeightUpdated))
}

/// Remove a member.
#[utoipa::path(delete, path = "/api/groups/{id}/sub-groups/{sub_group_id}", tag = "sub-groups",
    params(("id" = i64, Path, description = "Aggregate group id"),
        ("sub_group_id" = i64, Path, description = "Member group id")),
    responses((status = 200, body = Envelope<NoData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "Unknown group or not a member", body = ErrorBody)))]
pub async fn remove(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Reply<NoData> {
    let (id, sub) = path.into_inner();
    let member = parse_id(&sub, Msg::InvalidSubGroupId)?;
    let aggregate = require_aggregate(&state, &id).await?;
    if !state.repo.remove_sub_group(aggregate.id, member).await? {
        return Err(AdminError::NotFound(t(Msg::SubGroupNotFound)));
    }
    state.reload_config().await?;
    done(t(Msg::SubGroupRemoved))
}

/// The aggregates that include a group, with the group's weight in each.
#[utoipa::path(get, path = "/api/groups/{id}/parent-aggregate-groups", tag = "sub-groups",
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, body = Envelope<Vec<ParentAggregate>>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn parents(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Reply<Vec<ParentAggregate>> {
    let id = parse_id(&id, Msg::InvalidGroupId)?;
    require_group(&state, id).await?;
    let links = state.repo.parent_links(id).await?;
    let ids: Vec<i64> = links.iter().map(|(id, _)| *id).collect();
    let groups = state.repo.groups_by_ids(&ids).await?;
    ok(groups
        .into_iter()
        .filter_map(|g| {
            let weight = links.iter().find(|(id, _)| *id == g.id)?.1;
            Some(ParentAggregate {
                group_id: g.id,
                name: g.name,
                display_name: g.display_name,
                weight,
            })
        })
        .collect())
}
