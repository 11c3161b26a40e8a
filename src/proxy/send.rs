//! One upstream exchange of an attempt: send the request and wait for the response head,
//! following upstream redirects itself so that credentials are stripped when a redirect leaves
//! the upstream's host (a client following it would carry its proxy key there).

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use awc::error::SendRequestError;
use bytes::Bytes;

use super::body::upstream_body;

/// Upstream redirects followed per attempt, as GPT-Load's HTTP client does.
const MAX_REDIRECTS: usize = 10;

/// Credentials removed when an upstream redirects to another host.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
];

/// What one exchange sends.
pub struct Outgoing<'a> {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: &'a Bytes,
    /// Time allowed for the response head, per hop.
    pub timeout: Duration,
}

/// Sends `out`, following redirects; the response is the first that is not a redirect (or the
/// last one when no hop is left).
pub async fn send(
    client: &awc::Client,
    out: Outgoing<'_>,
) -> Result<awc::ClientResponse, SendRequestError> {
    let Outgoing {
        mut method,
        mut url,
        mut headers,
        body,
        timeout,
    } = out;
    let mut body = Some(body);
    for _ in 0..=MAX_REDIRECTS {
        let mut request = client
            .request(method.clone(), url.as_str())
            .no_decompress()
            .timeout(timeout);
        *request.headers_mut() = headers.clone();
        let sent = match body {
            Some(bytes) => request.send_body(upstream_body(bytes)),
            None => request.send_body(Bytes::new()),
        };
        let response = sent.await?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let (true, Some(location)) = (status.is_redirection(), location) else {
            return Ok(response);
        };
        let Some(next) = next_hop(&url, location, &mut headers) else {
            return Ok(response);
        };
        if status == StatusCode::SEE_OTHER
            || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                && method == Method::POST)
        {
            method = Method::GET;
            body = None;
            headers.remove(header::CONTENT_TYPE);
        }
        url = next;
    }
    client
        .request(method, url.as_str())
        .no_decompress()
        .timeout(timeout)
        .send()
        .await
}

/// The redirect's target; when it leaves the host, credentials go from `headers` and the `key`
/// parameter from its query.
fn next_hop(url: &str, location: &str, headers: &mut HeaderMap) -> Option<String> {
    let current = url::Url::parse(url).ok()?;
    let mut next = current.join(location).ok()?;
    let same_host = current.host_str() == next.host_str()
        && current.port_or_known_default() == next.port_or_known_default();
    if !same_host {
        for name in CREDENTIAL_HEADERS {
            headers.remove(name);
        }
        let kept: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(k, _)| k != "key")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            next.set_query(None);
        } else {
            next.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    Some(next.to_string())
}
