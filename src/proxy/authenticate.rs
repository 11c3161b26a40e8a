//! Authenticate phase: who is asking, for which group, at which path. Nothing here reads the
//! body or takes a slot, so a client without a valid credential costs only this check.

use std::sync::Arc;

use actix_web::HttpRequest;
use gpt_load_actors::group_registry::{GroupView, Snapshot};

use super::path;
use super::state::ProxyState;
use crate::http::credentials;
use crate::proxy::error::ProxyError;

/// An authenticated request for a known group.
pub struct Target {
    /// The configuration the request was authenticated against.
    pub snapshot: Arc<Snapshot>,
    /// The group named in the URL (an aggregate is resolved later).
    pub requested: Arc<GroupView>,
    /// The path after `/proxy/{group}`, still percent-encoded, free of dot segments.
    pub tail: String,
    /// Non-secret identity of the proxy key that matched (`group #1 · 1a2b3c4d`).
    pub proxy_key: String,
}

/// Checks the credential, then the group, then the path. A credential that matches neither a
/// global proxy key nor the named group's keys gets 401 whether the group exists or not, so group
/// names cannot be probed; only a valid global key learns that a group is unknown (404). A path
/// with dot segments is refused with 400 rather than sent where it could leave the upstream's
/// base path.
pub fn authenticate(req: &HttpRequest, state: &ProxyState) -> Result<Target, ProxyError> {
    let credential =
        credentials::extract(req.headers(), req.query_string()).ok_or(ProxyError::Unauthorized)?;
    let name = path::group_name(req.path());
    let snapshot = state.snapshot.load_full();
    let requested = snapshot.groups.get(name).cloned();
    let global = credentials::position(&credential, &snapshot.global_proxy_keys);
    let own = requested
        .as_ref()
        .and_then(|group| credentials::position(&credential, &group.proxy_keys));
    let (scope, index) = match (own, global) {
        (Some(i), _) => ("group", i),
        (None, Some(i)) => ("global", i),
        (None, None) => return Err(ProxyError::Unauthorized),
    };
    let proxy_key = state.proxy_identities.get(&credential, scope, index, || {
        state.repo.codec.hash(&credential)
    });
    let requested = requested.ok_or_else(|| ProxyError::GroupNotFound(name.to_string()))?;
    let tail = path::upstream_path(req.uri().path(), name);
    if !path::is_confined(tail) {
        return Err(ProxyError::BadRequest(
            "Path must not contain '.' or '..' segments".into(),
        ));
    }
    let tail = tail.to_string();
    Ok(Target {
        snapshot,
        requested,
        tail,
        proxy_key,
    })
}
