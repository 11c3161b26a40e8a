//! gpt-load: a transparent, high-performance multi-key proxy for AI APIs.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod app;
pub mod channel;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod key_encryption;
pub mod key_sync;
pub mod log_writer;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod migrate_keys;
pub mod outbound;
pub mod proxy;
pub mod retention;
pub mod service;
pub mod state;
pub mod store;
pub mod tasks;
pub mod usage;
pub mod validation;
