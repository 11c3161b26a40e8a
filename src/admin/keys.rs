//! Keys of a group: the paginated listing (with each key's live health from the pool), the
//! streamed text export, per-key notes, and the operator's per-key controls (disable/enable,
//! cooldown reset), plus the key-text parsing every bulk call shares.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::SecondsFormat;
use gpt_load_actors::domain::{GroupId, KeyId, KeyStatus};
use gpt_load_actors::key_pool::{KeyHealthView, OperatorCommand};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::i18n::{t, Msg};
use super::response::{done, ok, ok_with, page_params, Envelope, ErrorBody, NoData, Page, Reply};
use super::state::AdminState;
use super::{parse_id, require_group, timestamp, timestamp_opt};
use crate::admin::error::AdminError;
use crate::db::models::KeyRow;
use crate::db::repo::KeyFilter;
use crate::key_sync;

/// Keys a synchronous bulk call may carry.
pub const SYNC_BATCH_LIMIT: usize = 5000;

/// Keys per batch of the streamed export.
const EXPORT_BATCH: i64 = 500;

/// One key as listings return it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
    pub id: i64,
    /// The key in plain text (`failed-to-decrypt` when the stored value cannot be read).
    pub key_value: String,
    pub key_hash: String,
    pub group_id: i64,
    /// Stored status: `active`, `invalid` or `disabled`.
    pub status: String,
    /// Live state from this node's key pool: `active`, `cooling_down`, `invalid` or `disabled`.
    pub state: String,
    /// When the current whole-key rest ends (RFC 3339), or null when the key is not resting.
    pub cooldown_until: Option<String>,
    /// Rests for single models after their rate limits (the key keeps serving other models).
    pub model_cooldowns: Vec<ModelCooldown>,
    /// True when the key failed as dead and is leased only when no other key is left.
    pub demoted: bool,
    /// Class of the key's last failure seen by this node since it started (`key_dead`,
    /// `rate_limited`, `upstream_trouble`, `request_fault`), or null.
    pub last_failure: Option<String>,
    pub notes: String,
    pub request_count: i64,
    pub failure_count: i64,
    pub last_used_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Prompt tokens of the key's answered requests, as upstreams reported them.
    pub input_tokens: i64,
    /// Generated tokens of the key's answered requests.
    pub output_tokens: i64,
    pub total_tokens: i64,
}

/// A key's rest for one model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCooldown {
    /// The model as sent upstream (after redirects).
    pub model: String,
    /// When the rest ends (RFC 3339).
    pub cooldown_until: String,
}

impl KeyResponse {
    /// The API form of a stored key with its live health (`None`: the pool does not hold it,
    /// so the stored status stands in).
    pub fn from_row(row: &KeyRow, state: &AdminState, live: Option<&KeyHealthView>) -> Self {
        KeyResponse {
            state: live.map_or_else(|| row.status.clone(), |v| v.state.as_str().to_string()),
            cooldown_until: live
                .and_then(|v| v.cooldown_until)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            model_cooldowns: live
                .map(|v| {
                    v.model_cooldowns
                        .iter()
                        .map(|r| ModelCooldown {
                            model: r.model.clone(),
                            cooldown_until: r.until.to_rfc3339_opts(SecondsFormat::Millis, true),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            demoted: live.is_some_and(|v| v.demoted),
            last_failure: live
                .and_then(|v| v.last_failure)
                .map(|c| c.as_str().to_string()),
            id: row.id,
            key_value: state
                .repo
                .codec
                .decode(&row.key_value)
                .map(|plain| plain.expose().to_string())
                .unwrap_or_else(|_| "failed-to-decrypt".into()),
            key_hash: row.key_hash.clone(),
            group_id: row.group_id,
            status: row.status.clone(),
            notes: row.notes.clone(),
            request_count: row.request_count,
            failure_count: row.failure_count,
            last_used_at: timestamp_opt(&row.last_used_at),
            created_at: timestamp(&row.created_at),
            updated_at: timestamp(&row.updated_at),
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            total_tokens: row.total_tokens,
        }
    }
}

/// Splits pasted key text: a non-empty JSON array of strings, or else any run of whitespace,
/// commas and semicolons. Entries are trimmed, empty ones dropped; order is kept.
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

/// Where in pasted key text an unusable key sits: its line in plain text, its position in a
/// JSON array (1-based), and the first character that makes it unusable.
#[derive(Debug, PartialEq, Eq)]
pub enum UnfitKey {
    OnLine(usize, char),
    InEntry(usize, char),
}

/// The first key of `text` (read as [`parse_keys_text`] reads it) that holds a character other
/// than printable ASCII: a CR, LF, NUL, tab or space inside a key (possible through a JSON
/// array), a control character in plain text, or a non-ASCII letter. Such a key cannot be sent
/// in an HTTP header, so it would go out without credentials and fail every request.
pub fn first_unfit_key(text: &str) -> Option<UnfitKey> {
    let unfit = |key: &str| key.chars().find(|c| !c.is_ascii_graphic());
    if let Ok(list) = serde_json::from_str::<Vec<String>>(text.trim()) {
        if !list.is_empty() {
            return list
                .iter()
                .enumerate()
                .find_map(|(i, k)| unfit(k.trim()).map(|c| UnfitKey::InEntry(i + 1, c)));
        }
    }
    text.split('\n').enumerate().find_map(|(i, line)| {
        line.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .find_map(unfit)
            .map(|c| UnfitKey::OnLine(i + 1, c))
    })
}

/// A required `group_id` query parameter.
pub fn group_id_param(raw: Option<&str>) -> Result<i64, AdminError> {
    let raw = raw
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdminError::BadRequest(t(Msg::GroupIdRequired)))?;
    parse_id(raw, Msg::GroupIdInvalid)
}

/// Query of `GET /api/keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// Required group id.
    pub group_id: Option<String>,
    /// `active`, `invalid` or `disabled` (the stored status); empty for every key.
    #[param(pattern = "^\\s*(active|invalid|disabled)?\\s*$")]
    pub status: Option<String>,
    /// Exact key (matched by hash).
    pub key_value: Option<String>,
    /// Page number, from 1.
    pub page: Option<String>,
    /// Items per page (default 15, at most 1000).
    pub page_size: Option<String>,
}

/// The live health of some keys of a group, from the pool (an admin-path message, never a
/// database read).
async fn live_health(
    state: &AdminState,
    group_id: GroupId,
    key_ids: Vec<KeyId>,
) -> Result<HashMap<KeyId, KeyHealthView>, AdminError> {
    Ok(state.pool.describe(group_id, key_ids).await?)
}

/// List a group's keys, most recently used first (never used last), each with its live state,
/// cooldown end and last failure class.
#[utoipa::path(get, path = "/api/keys", tag = "keys", params(KeyListQuery),
    responses((status = 200, body = Envelope<Page<KeyResponse>>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<KeyListQuery>,
) -> Reply<Page<KeyResponse>> {
    let group_id = group_id_param(query.group_id.as_deref())?;
    require_group(&state, group_id).await?;
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            KeyStatus::from_input(raw)
                .ok_or_else(|| AdminError::Validation(t(Msg::KeyFilterStatusInvalid)))?,
        ),
    };
    let key_hash = query
        .key_value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| state.repo.codec.hash(v));
    let (page, size) = page_params(query.page.as_deref(), query.page_size.as_deref());
    let filter = KeyFilter {
        group_id,
        status,
        key_hash,
    };
    let (rows, total) = state.repo.keys_page(&filter, page, size).await?;
    let live = live_health(&state, group_id, rows.iter().map(|r| r.id).collect()).await?;
    let items = rows
        .iter()
        .map(|r| KeyResponse::from_row(r, &state, live.get(&r.id)))
        .collect();
    ok(Page::new(items, page, size, total))
}

/// Query of `GET /api/keys/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyExportQuery {
    /// Required group id.
    pub group_id: Option<String>,
    /// `all` (default), `active`, `invalid` or `disabled`.
    #[param(pattern = "^\\s*(all|active|invalid|disabled)?\\s*$")]
    pub status: Option<String>,
}

/// Download a group's keys as text, one per line, streamed in batches (keys that cannot be
/// decrypted are skipped). Browsers authenticate with `?key=`.
#[utoipa::path(get, path = "/api/keys/export", tag = "keys", params(KeyExportQuery),
    responses((status = 200, content_type = "text/plain", body = String,
            description = "Attachment `keys-{group}-{status}.txt`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    query: web::Query<KeyExportQuery>,
) -> Result<HttpResponse, AdminError> {
    let group_id = group_id_param(query.group_id.as_deref())?;
    let (label, status) = match query.status.as_deref().map(str::trim) {
        None | Some("") | Some("all") => ("all", None),
        Some(raw) => match KeyStatus::from_input(raw) {
            Some(status) => (status.as_str(), Some(status)),
            None => return Err(AdminError::Validation(t(Msg::ExportStatusInvalid))),
        },
    };
    let group = require_group(&state, group_id).await?;
    let repo = state.repo.clone();
    let body = futures_util::stream::unfold(Some(0i64), move |after| {
        let repo = repo.clone();
        async move {
            let after = after?;
            match repo
                .key_values_after(group_id, status, after, EXPORT_BATCH)
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |(id, _)| *id);
                    let mut text = String::with_capacity(rows.len() * 64);
                    for (_, stored) in &rows {
                        if let Ok(plain) = repo.codec.decode(stored) {
                            text.push_str(plain.expose());
                            text.push('\n');
                        }
                    }
                    Some((Ok::<_, AdminError>(Bytes::from(text)), Some(last)))
                }
                Err(err) => {
                    tracing::error!(group_id, error = %err, "Key export failed mid-stream.");
                    Some((Err(AdminError::from(err)), None))
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(super::attachment(&format!(
            "keys-{}-{label}.txt",
            group.name
        )))
        .streaming(body))
}

/// Body of `PUT /api/keys/{id}/notes`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NotesRequest {
    /// Free text, at most 255 characters after trimming.
    #[schema(max_length = 255)]
    pub notes: String,
}

/// Set a key's notes.
#[utoipa::path(put, path = "/api/keys/{id}/notes", tag = "keys", request_body = NotesRequest,
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = Envelope<NoData>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_notes(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<NotesRequest>,
) -> Reply<NoData> {
    let id = parse_id(&id, Msg::InvalidKeyId)?;
    let notes = body.notes.trim();
    if notes.chars().count() > 255 {
        return Err(AdminError::Validation(t(Msg::NotesTooLong)));
    }
    if !state.repo.update_notes(id, notes).await? {
        return Err(AdminError::NotFound(t(Msg::KeyNotFound)));
    }
    done(t(Msg::Success))
}

/// Body of `PUT /api/keys/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyStatusRequest {
    /// `disabled` takes the key out of service until an operator enables it again; `active`
    /// enables it (also a blacklisted one) with a zero failure count and a fresh health.
    #[schema(pattern = "^\\s*(active|disabled)\\s*$")]
    pub status: String,
}

/// The key (404 when unknown) with its live health.
async fn key_with_health(state: &AdminState, id: KeyId) -> Result<KeyResponse, AdminError> {
    let row = state
        .repo
        .key(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(t(Msg::KeyNotFound)))?;
    let live = live_health(state, row.group_id, vec![row.id]).await?;
    Ok(KeyResponse::from_row(&row, state, live.get(&row.id)))
}

/// Disable or enable one key. A disabled key is never leased, never validated and ignores
/// failures; enabling makes it active with a zero failure count and a fresh health (no rest for
/// any model). The change goes through the key pool, which stores it in order with the health
/// writes of traffic, so a failure in flight cannot undo it.
#[utoipa::path(put, path = "/api/keys/{id}/status", tag = "keys", request_body = KeyStatusRequest,
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = Envelope<KeyResponse>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_status(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<KeyStatusRequest>,
) -> Reply<KeyResponse> {
    let id = parse_id(&id, Msg::InvalidKeyId)?;
    let status = match KeyStatus::from_input(body.status.trim()) {
        Some(status @ (KeyStatus::Active | KeyStatus::Disabled)) => status,
        _ => return Err(AdminError::Validation(t(Msg::KeyStatusChoice))),
    };
    let row = state
        .repo
        .key(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(t(Msg::KeyNotFound)))?;
    let command = OperatorCommand::SetStatus {
        group_id: row.group_id,
        key_id: id,
        status,
    };
    if key_sync::command(&state.key_sync(), command)
        .await?
        .is_empty()
    {
        return Err(AdminError::NotFound(t(Msg::KeyNotFound)));
    }
    tracing::info!(
        key_id = id,
        status = status.as_str(),
        "An operator changed a key's status."
    );
    let key = key_with_health(&state, id).await?;
    let msg = if status == KeyStatus::Disabled {
        Msg::KeyDisabled
    } else {
        Msg::KeyEnabled
    };
    ok_with(t(msg), key)
}

/// Query of `POST /api/keys/{id}/reset-cooldown`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetCooldownQuery {
    /// End only the rest for this model (as sent upstream); every rest of the key when absent.
    pub model: Option<String>,
}

/// End a key's rests now (every rest, or the one for `?model=`), so leases use it again at once
/// (its backoff starts over too). Answers the key; the message says whether it was resting.
#[utoipa::path(post, path = "/api/keys/{id}/reset-cooldown", tag = "keys",
    params(("id" = i64, Path, description = "Key id"), ResetCooldownQuery),
    responses((status = 200, body = Envelope<KeyResponse>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_cooldown(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    query: web::Query<ResetCooldownQuery>,
) -> Reply<KeyResponse> {
    let id = parse_id(&id, Msg::InvalidKeyId)?;
    let model = query
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let row = state
        .repo
        .key(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(t(Msg::KeyNotFound)))?;
    let was_cooling = state
        .pool
        .reset_rests(row.group_id, id, model)
        .await?
        .unwrap_or(false);
    let key = key_with_health(&state, id).await?;
    let msg = if was_cooling {
        Msg::CooldownReset
    } else {
        Msg::KeyNotCooling
    };
    ok_with(t(msg), key)
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
        assert_eq!(parse_keys_text("[]"), vec!["[]"]);
    }

    #[test]
    fn keys_with_control_characters_or_inner_whitespace_are_found() {
        assert_eq!(first_unfit_key("sk-a\nsk-b, sk-c\r\n"), None);
        assert_eq!(
            first_unfit_key("sk-a\nsk-b\0x\n"),
            Some(UnfitKey::OnLine(2, '\0'))
        );
        assert_eq!(
            first_unfit_key("sk-a\nsk-b\n sk-\u{e9}"),
            Some(UnfitKey::OnLine(3, '\u{e9}'))
        );
        assert_eq!(
            first_unfit_key(r#"["sk-a", " sk-b ", "sk-c\r\nInjected: 1"]"#),
            Some(UnfitKey::InEntry(3, '\r'))
        );
        assert_eq!(
            first_unfit_key(r#"["sk a"]"#),
            Some(UnfitKey::InEntry(1, ' '))
        );
    }

    #[test]
    fn group_id_parameter_is_required_and_numeric() {
        assert!(matches!(
            group_id_param(None),
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(
            group_id_param(Some("x")),
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(
            group_id_param(Some("0")),
            Err(AdminError::BadRequest(_))
        ));
        assert_eq!(group_id_param(Some(" 7 ")).unwrap(), 7);
    }
}
