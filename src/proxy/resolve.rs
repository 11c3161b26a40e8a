//! Resolve phase: the group that serves the request. A plain group serves itself; an aggregate
//! picks one member per request by smooth weighted round robin, and that choice holds for every
//! retry of the request.

use std::sync::Arc;

use gpt_load_actors::domain::GroupId;
use gpt_load_actors::group_registry::{GroupView, Snapshot};
use gpt_load_actors::key_pool::Lease;

use super::state::ProxyState;
use crate::proxy::error::ProxyError;

/// A key for `group_id` and `model` (as sent upstream) other than those `tried`, read from the
/// table the key pool publishes (no message on the hot path).
pub fn lease(
    state: &ProxyState,
    group_id: GroupId,
    model: Option<&str>,
    tried: &[i64],
) -> Option<Lease> {
    state.pool.lease(group_id, model, tried)
}

/// The serving group, with its first key when choosing it needed one.
pub fn serving_group(
    state: &ProxyState,
    snapshot: &Snapshot,
    requested: &Arc<GroupView>,
) -> Result<(Arc<GroupView>, Option<Lease>), ProxyError> {
    if !requested.record.is_aggregate() {
        return Ok((Arc::clone(requested), None));
    }
    // Members without a usable key are left out before choosing, so the weights of the others
    // stay exact; a member emptied in the meantime is skipped on the lease.
    let mut skipped: Vec<GroupId> = Vec::new();
    for _ in 0..requested.members.len() {
        let usable = |id: &GroupId| !skipped.contains(id) && state.pool.in_rotation(*id) > 0;
        let Some(&member_id) = requested.members.pick_where(usable) else {
            break;
        };
        skipped.push(member_id);
        let Some(member) = snapshot
            .by_id
            .get(&member_id)
            .filter(|m| !m.record.is_aggregate())
        else {
            continue;
        };
        // The model is not known yet: only whole-key rests order this first lease.
        if let Some(first) = lease(state, member_id, None, &[]) {
            return Ok((Arc::clone(member), Some(first)));
        }
    }
    Err(ProxyError::NoKeysAvailable(
        "No available sub-groups".into(),
    ))
}
