//! HTTP plumbing shared by the proxy and the admin API: errors, credentials, middleware.

pub mod credentials;
pub mod error;
pub mod middleware;
