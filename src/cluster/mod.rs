//! Cluster coordination: which node runs the singleton jobs.

pub mod leadership;

pub use leadership::{Leadership, Role};
