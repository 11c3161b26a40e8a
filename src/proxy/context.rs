//! The per-request context: what the phases after `prepare` share, built once and carried
//! through the attempt loop to the relay and the record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use gpt_load_actors::group_registry::GroupView;
use gpt_load_actors::key_pool::Lease;

use super::body::HeldBody;
use super::cancel::Interrupts;
use super::record::RequestLog;
use crate::channel::Channel;

/// The request as it goes upstream, the same for every attempt.
pub struct Forward {
    pub method: Method,
    /// The upstream path (redirected when a Gemini model in the path was).
    pub path: String,
    /// The query without the client's credential.
    pub query: String,
    /// The client's headers minus credentials and hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: HeldBody,
    pub client_ip: String,
    pub is_stream: bool,
}

/// One proxied request between `prepare` and `record`.
pub struct RequestContext {
    pub started: Instant,
    /// The serving group (an aggregate's member when the URL named an aggregate).
    pub group: Arc<GroupView>,
    pub channel: &'static dyn Channel,
    /// The key chosen with an aggregate's member, used by the first attempt.
    pub first_lease: Option<Lease>,
    pub forward: Forward,
    /// A model-list reply is rewritten per the group's redirect rules.
    pub is_model_list: bool,
    pub log: RequestLog,
    pub interrupts: Interrupts,
    /// Time spent waiting on upstreams: the proxy's own overhead is the rest.
    pub upstream_time: Duration,
}
