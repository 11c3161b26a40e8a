//! State and decisions of gpt-load: key pools, the group registry, the cluster election and the
//! pure rules they use. Nothing in this crate speaks SQL, HTTP or Redis; adapters implement the
//! traits in [`ports`] and [`cluster::Coordinator`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cluster;
pub mod domain;
pub mod group_registry;
pub mod key_pool;
pub mod key_state;
pub mod log_batcher;
pub mod ports;
pub mod settings;
pub mod status_codes;
pub mod validator;
pub mod weighted;
