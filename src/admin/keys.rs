//! Keys of a group: list, add and delete in bulk. Writes go to the database first, then to the
//! key pool, so the next proxied request sees them.

use std::collections::{HashMap, HashSet};

use actix_web::{web, HttpResponse};
use gpt_load_actors::domain::KeyStatus;
use gpt_load_actors::key_pool::{AddKeys, RemoveKeys};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, parse_id, timestamp, timestamp_opt};
use crate::db::models::KeyRow;
use crate::db::repo::KeyFilter;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Keys a synchronous bulk call may carry.
pub const SYNC_BATCH_LIMIT: usize = 5000;

/// The JSON of one key.
pub fn key_json(row: &KeyRow, state: &AppState) -> Value {
    let value = state
        .repo
        .codec
        .decode(&row.key_value)
        .map(|plain| plain.expose().to_string())
        .unwrap_or_else(|_| "failed-to-decrypt".into());
    json!({
        "id": row.id,
        "key_value": value,
        "key_hash": row.key_hash,
        "group_id": row.group_id,
        "status": row.status,
        "notes": row.notes,
        "request_count": row.request_count,
        "failure_count": row.failure_count,
        "last_used_at": timestamp_opt(&row.last_used_at),
        "created_at": timestamp(&row.created_at),
        "updated_at": timestamp(&row.updated_at),
    })
}

/// Splits pasted key text: a JSON array of strings, or any run of whitespace, commas and
/// semicolons. Empty entries are dropped; order is kept.
pub fn parse_keys_text(text: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text.trim()) {
        if !list.is_empty() {
            return list
                .into_iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
        }
    }
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Pagination as GPT-Load reads it: `page` ≥ 1, `page_size` 1–1000 (default 15).
pub fn pagination(query: &HashMap<String, String>) -> (i64, i64) {
    let page = query
        .get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let size = query
        .get("page_size")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(15)
        .min(1000);
    (page, size)
}

/// A page of items in GPT-Load's shape.
pub fn paginated(items: Vec<Value>, page: i64, page_size: i64, total: i64) -> Value {
    json!({
        "items": items,
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total_items": total,
            "total_pages": (total + page_size - 1) / page_size,
        }
    })
}

fn group_id_query(query: &HashMap<String, String>) -> Result<i64, ApiError> {
    let raw = query
        .get("group_id")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest("group_id query parameter is required".into()))?;
    parse_id(raw, "group_id").map_err(|_| ApiError::BadRequest("Invalid group_id format".into()))
}

async fn require_group(state: &AppState, group_id: i64) -> Result<(), ApiError> {
    match state.repo.group(group_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("Group not found".into())),
    }
}

/// `GET /api/keys?group_id=&status=&key_value=&page=&page_size=`.
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let group_id = group_id_query(&query)?;
    require_group(&state, group_id).await?;
    let status = match query.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("active") => Some(KeyStatus::Active),
        Some("invalid") => Some(KeyStatus::Invalid),
        Some(_) => {
            return Err(ApiError::Validation(
                "status must be 'active' or 'invalid'".into(),
            ))
        }
    };
    let key_hash = query
        .get("key_value")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| state.repo.codec.hash(v));
    let (page, size) = pagination(&query);
    let filter = KeyFilter {
        group_id,
        status,
        key_hash,
    };
    let (rows, total) = state.repo.keys_page(&filter, page, size).await?;
    let items = rows.iter().map(|r| key_json(r, &state)).collect();
    Ok(ok(paginated(items, page, size, total)))
}

/// Body of the bulk key calls.
#[derive(Debug, Deserialize)]
pub struct KeysText {
    pub group_id: i64,
    pub keys_text: String,
}

fn parse_batch(body: &KeysText) -> Result<Vec<String>, ApiError> {
    if body.keys_text.trim().is_empty() {
        return Err(ApiError::Validation("Keys text cannot be empty".into()));
    }
    let keys = parse_keys_text(&body.keys_text);
    if keys.is_empty() {
        return Err(ApiError::Validation(
            "No valid keys found in the input".into(),
        ));
    }
    if keys.len() > SYNC_BATCH_LIMIT {
        return Err(ApiError::Validation(format!(
            "Batch size exceeds the limit of {SYNC_BATCH_LIMIT} keys; use the async import for more"
        )));
    }
    Ok(keys)
}

/// `POST /api/keys/add-multiple`: adds keys not yet in the group.
pub async fn add_multiple(
    _admin: super::Admin,
    state: web::Data<AppState>,
    body: web::Json<KeysText>,
) -> Result<HttpResponse, ApiError> {
    if body.group_id <= 0 {
        return Err(ApiError::Validation("group_id is required".into()));
    }
    require_group(&state, body.group_id).await?;
    let keys = parse_batch(&body)?;
    let input_count = keys.len();
    let mut seen = HashSet::new();
    let unique: Vec<(String, String)> = keys
        .into_iter()
        .map(|k| {
            let h = state.repo.codec.hash(&k);
            (k, h)
        })
        .filter(|(_, h)| seen.insert(h.clone()))
        .collect();
    let hashes: Vec<String> = unique.iter().map(|(_, h)| h.clone()).collect();
    let existing = state.repo.existing_hashes(body.group_id, &hashes).await?;
    let fresh: Vec<String> = unique
        .into_iter()
        .filter(|(_, h)| !existing.contains(h))
        .map(|(k, _)| k)
        .collect();
    let added = state.repo.insert_keys(body.group_id, &fresh).await?;
    let added_count = added.len();
    if !added.is_empty() {
        state
            .pool
            .send(AddKeys { keys: added })
            .await
            .map_err(|e| ApiError::Internal(format!("key pool unavailable: {e}")))?;
    }
    let total = state.repo.count_keys(body.group_id).await?;
    Ok(ok(json!({
        "added_count": added_count,
        "ignored_count": input_count - added_count,
        "total_in_group": total,
    })))
}

/// `POST /api/keys/delete-multiple`: deletes the listed keys of the group.
pub async fn delete_multiple(
    _admin: super::Admin,
    state: web::Data<AppState>,
    body: web::Json<KeysText>,
) -> Result<HttpResponse, ApiError> {
    if body.group_id <= 0 {
        return Err(ApiError::Validation("group_id is required".into()));
    }
    require_group(&state, body.group_id).await?;
    let keys = parse_batch(&body)?;
    let input_count = keys.len();
    let hashes: Vec<String> = keys
        .iter()
        .map(|k| state.repo.codec.hash(k))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let removed = state
        .repo
        .delete_keys_by_hash(body.group_id, &hashes)
        .await?;
    let deleted_count = removed.len();
    state
        .pool
        .send(RemoveKeys {
            group_id: body.group_id,
            key_ids: removed,
        })
        .await
        .map_err(|e| ApiError::Internal(format!("key pool unavailable: {e}")))?;
    let total = state.repo.count_keys(body.group_id).await?;
    Ok(ok(json!({
        "deleted_count": deleted_count,
        "ignored_count": input_count - deleted_count,
        "total_in_group": total,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_accepts_json_arrays_and_any_separators() {
        assert_eq!(parse_keys_text(r#"["a", " b ", ""]"#), vec!["a", "b"]);
        assert_eq!(
            parse_keys_text("a,b;c\n d\t\te ,, ;"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert!(parse_keys_text(" \n ").is_empty());
    }

    #[test]
    fn pagination_clamps_like_gpt_load() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(pagination(&q(&[])), (1, 15));
        assert_eq!(
            pagination(&q(&[("page", "0"), ("page_size", "-3")])),
            (1, 15)
        );
        assert_eq!(
            pagination(&q(&[("page", "3"), ("page_size", "5000")])),
            (3, 1000)
        );
        assert_eq!(paginated(vec![], 1, 15, 31)["pagination"]["total_pages"], 3);
    }
}
