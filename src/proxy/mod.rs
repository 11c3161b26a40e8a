//! The `/proxy/{group}/{path}` handler, a pipeline of phases in the manner of Pingora's
//! `ProxyHttp`. Each phase is a function in the file named after it; what later phases need
//! travels in a [`context::RequestContext`]:
//!
//! 1. [`authenticate`]: credential, group, confined path (401 / 404 / 400; nothing held yet).
//! 2. [`body`]: the body, read once within `SERVER_READ_TIMEOUT` and the body memory budget.
//! 3. admit: a `MAX_CONCURRENT_REQUESTS` slot, only now that the caller is known and its body
//!    is here ([`crate::http::admission`]).
//! 4. [`resolve`]: the serving group (an aggregate picks a member).
//! 5. [`prepare`]: channel probe, parameter overrides, model redirects, forwarded headers.
//! 6. [`attempt`]: lease, pick upstream, inject key, header rules, [`send`]; retry on failover,
//!    stop when the client leaves or the server's stop deadline passes ([`cancel`]).
//! 7. [`failure`]: a failed attempt's origin (upstream, transport, local) and whether it is retried.
//! 8. [`relay`] and [`record`]: the answer streamed back; log rows and metrics.

pub mod attempt;
pub mod authenticate;
pub mod body;
pub mod cancel;
pub mod classify;
pub mod context;
pub mod decode;
pub mod error;
pub mod failure;
pub mod path;
pub mod prepare;
pub mod record;
pub mod relay;
pub mod resolve;
pub mod rewrite;
pub mod send;
pub mod state;
pub mod upstream;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::proxy::error::ProxyError;
use prepare::Serving;
use state::ProxyState;
use upstream::UpstreamClients;

/// Handles one proxied request.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    clients: web::Data<UpstreamClients>,
) -> Result<HttpResponse, ProxyError> {
    let started = std::time::Instant::now();
    if path::group_name(req.path()).is_empty() {
        // `/proxy` or `/proxy/`: no group named, the app's JSON 404 as for any unknown path.
        return Ok(crate::http::spa::serve(req).await);
    }
    let target = authenticate::authenticate(&req, &state)?;
    let limit = state.config.max_request_body_bytes;
    let body = body::read(&req, payload, limit, &state.admission).await?;
    let slot = state.admission.slot()?;
    let (group, first_lease) = resolve::serving_group(&state, &target.snapshot, &target.requested)?;
    let serving = Serving { group, first_lease };
    let mut ctx = prepare::prepare(&req, &state, target, serving, body, started)?;
    let outcome = attempt::run(&state, &clients, &mut ctx).await?;
    let response = relay::respond(&state, ctx, outcome).await?;
    Ok(slot.hold_until_sent(response))
}
