//! Routes that start long-running key tasks (import, delete, validate) and report their status.
//! A task is started only when the slot is free (409 `TASK_IN_PROGRESS` otherwise); the answer
//! is the task's initial status, which `GET /api/tasks/status` then follows.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use gpt_load_actors::domain::KeyStatus;
use serde::Deserialize;
use utoipa::ToSchema;

use super::i18n::{t, tf, Msg};
use super::key_ops::{body_group_id, check_importable, parse_batch, KeysTextRequest};
use super::response::{ok, Envelope, ErrorBody, Reply};
use super::state::AdminState;
use super::{parse_id, require_group};
use crate::admin::error::AdminError;
use crate::tasks::{self, TaskKind, TaskStatus};

/// The multipart form of `add-async`: a `.txt` file of keys and the target group.
#[derive(Debug, ToSchema)]
pub struct KeyFileUpload {
    pub group_id: i64,
    /// A `.txt` file with keys separated by whitespace, commas or semicolons.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Body of `validate-group`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateGroupRequest {
    #[serde(deserialize_with = "super::response::whole")]
    pub group_id: i64,
    /// `active` or `invalid`; absent or empty validates every key except disabled ones.
    #[schema(pattern = "^\\s*(active|invalid)?\\s*$")]
    pub status: Option<String>,
}

fn busy() -> AdminError {
    AdminError::TaskInProgress(t(Msg::TaskInProgress))
}

fn task_error(err: tasks::StartTaskError) -> AdminError {
    match err {
        tasks::StartTaskError::Busy(_) => busy(),
        tasks::StartTaskError::Store(err) => gpt_load_actors::ports::PortError::from(err).into(),
    }
}

/// Import keys in the background. Send JSON `{group_id, keys_text}`, or `multipart/form-data`
/// with `group_id` and a `.txt` `file`. Poll `GET /api/tasks/status` for progress.
#[utoipa::path(post, path = "/api/keys/add-async", tag = "tasks",
    request_body(content(
        (KeysTextRequest = "application/json"),
        (KeyFileUpload = "multipart/form-data"),
    )),
    responses((status = 200, body = Envelope<TaskStatus>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Another task is running", body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn add_async(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<Envelope<TaskStatus>>, actix_web::Error> {
    let multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (group_id, keys_text) = if multipart {
        let upload = read_upload(&req, payload, state.config.max_request_body_bytes).await?;
        let text = String::from_utf8(upload.file)
            .map_err(|_| AdminError::Validation(t(Msg::FileNotUtf8)))?;
        (upload.group_id, text)
    } else {
        // The app's JSON config applies: size limit (413) and INVALID_JSON errors.
        let body =
            web::Json::<KeysTextRequest>::from_request(&req, &mut payload.into_inner()).await?;
        let body = body.into_inner();
        (body.group_id, body.keys_text)
    };
    Ok(start_import(&state, group_id, keys_text).await?)
}

async fn start_import(state: &AdminState, group_id: i64, keys_text: String) -> Reply<TaskStatus> {
    let group_id = body_group_id(group_id)?;
    let group = require_group(state, group_id).await?;
    let keys = parse_batch(&keys_text, None)?;
    check_importable(&keys_text)?;
    drop(keys_text);
    let task = state
        .tasks
        .start_task(TaskKind::KeyImport, &group.name, keys.len())
        .await
        .map_err(task_error)?;
    let status = task.status();
    let task_state = state.key_jobs();
    state
        .tasks
        .spawn(move || tasks::import::run(task_state, task, group_id, keys));
    ok(status)
}

/// Reads the multipart form of `add-async`, refusing more than `limit` bytes in total.
async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<KeyFileUpload, AdminError> {
    let invalid =
        |reason: String| AdminError::BadRequest(tf(Msg::MultipartInvalid, &[("reason", &reason)]));
    let mut form = Multipart::new(req.headers(), payload.into_inner());
    let mut group_id: Option<String> = None;
    let mut file: Option<Vec<u8>> = None;
    let mut read = 0usize;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| invalid(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !filename.ends_with(".txt") {
                return Err(AdminError::Validation(t(Msg::FileNotTxt)));
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| invalid(e.to_string()))?;
            read += chunk.len();
            if read > limit {
                return Err(crate::http::error::EdgeError::PayloadTooLarge { limit }.into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "group_id" => group_id = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "file" => file = Some(bytes),
            _ => {}
        }
    }
    let group_id = match group_id {
        Some(raw) => parse_id(&raw, Msg::GroupIdFieldRequired)
            .map_err(|_| AdminError::Validation(t(Msg::GroupIdFieldRequired)))?,
        None => return Err(AdminError::Validation(t(Msg::GroupIdFieldRequired))),
    };
    let file = file.ok_or_else(|| AdminError::Validation(t(Msg::FileRequired)))?;
    Ok(KeyFileUpload { group_id, file })
}

/// Delete the listed keys of a group in the background.
#[utoipa::path(post, path = "/api/keys/delete-async", tag = "tasks", request_body = KeysTextRequest,
    responses((status = 200, body = Envelope<TaskStatus>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Another task is running", body = ErrorBody)))]
pub async fn delete_async(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<KeysTextRequest>,
) -> Reply<TaskStatus> {
    let body = body.into_inner();
    let group_id = body_group_id(body.group_id)?;
    let group = require_group(&state, group_id).await?;
    let keys = parse_batch(&body.keys_text, None)?;
    let task = state
        .tasks
        .start_task(TaskKind::KeyDelete, &group.name, keys.len())
        .await
        .map_err(task_error)?;
    let status = task.status();
    let task_state = state.key_jobs();
    state
        .tasks
        .spawn(move || tasks::delete::run(task_state, task, group_id, keys));
    ok(status)
}

/// Validate a group's keys (all but disabled ones, or only `active` / `invalid` ones) in the
/// background, with the group's `key_validation_concurrency` and
/// `key_validation_timeout_seconds`. Failures count by class and never blacklist keys below the
/// group's usable-key floor.
#[utoipa::path(post, path = "/api/keys/validate-group", tag = "tasks", request_body = ValidateGroupRequest,
    responses((status = 200, body = Envelope<TaskStatus>),
        (status = 400, description = "Bad status", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Another task is running, or no keys to validate", body = ErrorBody)))]
pub async fn validate_group(
    _admin: super::Admin,
    state: web::Data<AdminState>,
    body: web::Json<ValidateGroupRequest>,
) -> Reply<TaskStatus> {
    let group_id = body_group_id(body.group_id)?;
    let status = match body.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("active") => Some(KeyStatus::Active),
        Some("invalid") => Some(KeyStatus::Invalid),
        Some(_) => return Err(AdminError::Validation(t(Msg::KeyStatusInvalid))),
    };
    let row = require_group(&state, group_id).await?;
    let group = state
        .snapshot
        .load()
        .by_id
        .get(&group_id)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(t(Msg::GroupNotFound)))?;
    let mut keys = state.repo.group_keys(group_id, status).await?;
    // Disabled keys are the operator's: validation never probes or changes them.
    keys.retain(|k| KeyStatus::parse(&k.status) != KeyStatus::Disabled);
    if keys.is_empty() {
        // GPT-Load reports this as a refused task start (409), and its UI expects that.
        return Err(AdminError::TaskInProgress(tf(
            Msg::NoKeysToValidate,
            &[("name", &row.name)],
        )));
    }
    let task = state
        .tasks
        .start_task(TaskKind::KeyValidation, &row.name, keys.len())
        .await
        .map_err(task_error)?;
    let status = task.status();
    let task_state = state.key_jobs();
    state
        .tasks
        .spawn(move || tasks::validate::run(task_state, task, group, keys));
    ok(status)
}

/// The current or last task: type, progress (`processed` of `total`), result or error.
#[utoipa::path(get, path = "/api/tasks/status", tag = "tasks",
    responses((status = 200, body = Envelope<TaskStatus>), (status = 401, body = ErrorBody)))]
pub async fn status(_admin: super::Admin, state: web::Data<AdminState>) -> Reply<TaskStatus> {
    ok(state.tasks.cluster_status().await)
}
