//! Read-body phase: the request body is read whole (every attempt resends it), once, into one
//! buffer counted against the node's body memory budget; attempts send slices of that buffer, so
//! a retry or a redirect copies nothing. The time a body may take is bounded by the
//! `body_deadline` middleware.

use std::convert::Infallible;

use actix_web::body::{BoxBody, SizedStream};
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::http::admission::{Admission, BodyReservation};
use crate::http::error::EdgeError;
use crate::proxy::error::ProxyError;

/// Bodies up to this size go upstream as one chunk; larger ones as slices of this size, so the
/// HTTP client's write buffer never holds a second copy of a large body.
const UPSTREAM_CHUNK: usize = 64 * 1024;

/// Budget reserved at a time for a body of unknown length.
const RESERVE_STEP: usize = 1 << 20;

/// A request body held in memory, with its share of the budget.
pub struct HeldBody {
    pub bytes: Bytes,
    _reservation: BodyReservation,
}

impl HeldBody {
    /// The same reservation around another body (parameter overrides, model redirects).
    pub fn replace(self, bytes: Bytes) -> Self {
        Self { bytes, ..self }
    }
}

/// Reads the whole body, refusing one over `limit` (413) or one the budget cannot hold now (503).
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    admission: &Admission,
) -> Result<HeldBody, ProxyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(EdgeError::PayloadTooLarge { limit }.into());
    }
    let mut reservation = admission.body_reservation();
    reservation.cover(declared.unwrap_or(0))?;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ProxyError::from(EdgeError::RequestTimeout)
            }
            other => ProxyError::BadRequest(format!("Failed to read request body: {other}")),
        })?;
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(EdgeError::PayloadTooLarge { limit }.into());
        }
        // A declared length is reserved already; an unknown one is reserved a step ahead.
        if declared.is_none_or(|declared| len > declared) {
            reservation.cover(len.next_multiple_of(RESERVE_STEP).min(limit))?;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(HeldBody {
        bytes: buf.freeze(),
        _reservation: reservation,
    })
}

/// The body as sent upstream: small ones whole, large ones as zero-copy slices with their length
/// declared.
pub fn upstream_body(bytes: &Bytes) -> BoxBody {
    if bytes.len() <= UPSTREAM_CHUNK {
        return BoxBody::new(bytes.clone());
    }
    let slices: Vec<Result<Bytes, Infallible>> = (0..bytes.len())
        .step_by(UPSTREAM_CHUNK)
        .map(|start| Ok(bytes.slice(start..(start + UPSTREAM_CHUNK).min(bytes.len()))))
        .collect();
    BoxBody::new(SizedStream::new(
        bytes.len() as u64,
        futures_util::stream::iter(slices),
    ))
}
