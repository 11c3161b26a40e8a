//! Upstream HTTP clients: one pooled awc client per worker thread and per connection settings
//! (timeouts, outbound proxy), built on first use and reused for every later request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use awc::{Client, Connector};
use gpt_load_actors::settings::EffectiveConfig;

use crate::outbound::{Dialer, ProxyRoute};

/// The settings that shape a connection pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    connect_timeout_secs: i64,
    idle_conn_timeout_secs: i64,
    route: ProxyRoute,
}

/// The worker's upstream clients. awc clients are not `Send`, so each worker owns its own set.
pub struct UpstreamClients {
    env_route: ProxyRoute,
    clients: RefCell<HashMap<PoolKey, Client>>,
}

impl UpstreamClients {
    /// Clients that use `env_route` (from `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`) unless a group
    /// sets its own `proxy_url`.
    pub fn new(env_route: ProxyRoute) -> Self {
        Self {
            env_route,
            clients: RefCell::new(HashMap::new()),
        }
    }

    /// The client for a group's effective config.
    pub fn get(&self, config: &EffectiveConfig) -> Client {
        let key = PoolKey {
            connect_timeout_secs: config.connect_timeout_secs,
            idle_conn_timeout_secs: config.idle_conn_timeout_secs,
            route: ProxyRoute::resolve(&config.proxy_url, &self.env_route),
        };
        let mut clients = self.clients.borrow_mut();
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let client = build(&key);
        clients.insert(key, client.clone());
        client
    }
}

fn build(key: &PoolKey) -> Client {
    let connector = Connector::new()
        .timeout(secs(key.connect_timeout_secs))
        .conn_keep_alive(secs(key.idle_conn_timeout_secs))
        // Long-lived pooled connections: the default 75 s lifetime would reconnect busy pools.
        .conn_lifetime(Duration::from_secs(3600))
        .limit(0);
    // The builder's type differs with the connector, so the common tail is a macro.
    macro_rules! finish {
        ($builder:expr) => {
            $builder
                // Redirects are followed by the proxy itself, which strips credentials across hosts.
                .disable_redirects()
                .no_default_headers()
                // Timeouts are set per request from the group's effective config.
                .disable_timeout()
                .finish()
        };
    }
    if key.route.is_direct() {
        finish!(Client::builder().connector(connector))
    } else {
        finish!(Client::builder().connector(connector.connector(Dialer::new(key.route.clone()))))
    }
}

fn secs(value: i64) -> Duration {
    Duration::from_secs(value.max(1) as u64)
}
