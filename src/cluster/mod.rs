//! Cluster coordination: which node runs the singleton jobs, and how every node's copies of the
//! configuration and key health stay in step.

pub mod actor;
pub mod leadership;
pub mod sync;
pub mod terms;

pub use actor::{ClusterActor, ElectionConfig, Resign};
pub use leadership::{Leadership, Role};
