//! Events nodes send each other over `<prefix>events`, as JSON.

use crate::domain::{GroupId, HealthChange, KeyId};
use serde::{Deserialize, Serialize};

/// What changed. Every event names what to reload, never the data itself: the database stays
/// the truth, and an event that arrives twice or late does no harm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// Groups, aggregate memberships or system settings changed: reload the registry.
    ConfigChanged,
    /// Keys of a group were added, deleted, restored or re-validated: reload its keys.
    KeysChanged { group_id: GroupId },
    /// A group and its keys were deleted.
    GroupDeleted { group_id: GroupId },
    /// Traffic changed one key's health.
    KeyHealth {
        group_id: GroupId,
        key_id: KeyId,
        change: HealthChange,
    },
}

/// An event and the node that sent it (nodes skip their own: the writer already applied it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub node: String,
    pub event: ClusterEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_tagged_json() {
        let env = EventEnvelope {
            node: "n1".into(),
            event: ClusterEvent::KeyHealth {
                group_id: 3,
                key_id: 9,
                change: HealthChange::CoolingDown {
                    for_ms: 1500,
                    model: Some("gemini-2.5-pro".into()),
                },
            },
        };
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(
            json,
            r#"{"node":"n1","event":{"type":"key_health","group_id":3,"key_id":9,"change":{"kind":"cooling_down","for_ms":1500,"model":"gemini-2.5-pro"}}}"#
        );
        assert_eq!(serde_json::from_str::<EventEnvelope>(&json).unwrap(), env);
    }
}
