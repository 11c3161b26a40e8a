//! HTTP plumbing shared by the proxy and the admin API: errors, credentials, middleware, and
//! the embedded admin UI.

pub mod admission;
pub mod credentials;
pub mod error;
pub mod middleware;
pub mod spa;
pub mod throttle;
