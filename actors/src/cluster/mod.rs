//! Cluster coordination in the core: the [`Coordinator`] port and the events nodes exchange,
//! [`ClusterActor`] (the leader election) and [`Leadership`] (which node runs the singleton jobs).
//! The adapters (Redis, in-process) and the application of other nodes' events live in the
//! server crate (`src/store/`, `src/cluster/`).

pub mod actor;
pub mod coordinator;
pub mod events;
pub mod leadership;

pub use actor::{ClusterActor, ElectionConfig, Resign};
pub use coordinator::{Coordinator, LeadAttempt, Notice, StoreError};
pub use events::{ClusterEvent, EventEnvelope};
pub use leadership::{Leadership, Role};
