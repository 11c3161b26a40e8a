//! Upstream HTTP clients: one pooled awc client per worker thread and per connection settings,
//! built on first use and reused for every later request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use awc::{Client, Connector};
use gpt_load_actors::settings::EffectiveConfig;

/// The settings that shape a connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    connect_timeout_secs: i64,
    idle_conn_timeout_secs: i64,
}

/// The worker's upstream clients. awc clients are not `Send`, so each worker owns its own set.
#[derive(Default)]
pub struct UpstreamClients {
    clients: RefCell<HashMap<PoolKey, Client>>,
}

impl UpstreamClients {
    /// The client for a group's effective config.
    pub fn get(&self, config: &EffectiveConfig) -> Client {
        let key = PoolKey {
            connect_timeout_secs: config.connect_timeout_secs,
            idle_conn_timeout_secs: config.idle_conn_timeout_secs,
        };
        self.clients
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| build(key))
            .clone()
    }
}

fn build(key: PoolKey) -> Client {
    let connector = Connector::new()
        .timeout(secs(key.connect_timeout_secs))
        .conn_keep_alive(secs(key.idle_conn_timeout_secs))
        // Long-lived pooled connections: the default 75 s lifetime would reconnect busy pools.
        .conn_lifetime(Duration::from_secs(3600))
        .limit(0);
    Client::builder()
        .connector(connector)
        // A proxy passes redirects to the client instead of following them with a key attached.
        .disable_redirects()
        .no_default_headers()
        // Timeouts are set per request from the group's effective config.
        .disable_timeout()
        .finish()
}

fn secs(value: i64) -> Duration {
    Duration::from_secs(value.max(1) as u64)
}
