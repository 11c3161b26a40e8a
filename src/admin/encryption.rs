//! `GET /api/dashboard/encryption-status`: whether `ENCRYPTION_KEY` still fits the stored keys.

use actix_web::{web, HttpResponse};

use super::ok;
use crate::http::error::ApiError;
use crate::key_encryption::status::encryption_status;
use crate::state::AppState;

/// Reports GPT-Load's mismatch scenarios from a sample of stored keys.
pub async fn status(
    _admin: super::Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = encryption_status(
        &state.repo.db,
        !state.config.encryption_key.is_empty(),
        &state.repo.codec,
    )
    .await?;
    Ok(ok(report))
}
