//! Where a client puts its credential (`?key=`, Bearer, `X-Api-Key`, `X-Goog-Api-Key`, in that
//! order, as GPT-Load reads them), constant-time comparison against the accepted keys, and the
//! one definition of a credential query parameter that both finding and removing it use.

use std::borrow::Cow;
use std::collections::HashMap;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use subtle::ConstantTimeEq;

/// The credential a request carries, if any.
pub fn extract(headers: &HeaderMap, query: &str) -> Option<String> {
    if let Some(key) = query_key(query) {
        return Some(key);
    }
    if let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_string());
    }
    for name in ["x-api-key", "x-goog-api-key"] {
        if let Some(value) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return Some(value.to_string());
        }
    }
    None
}

/// One `name=value` pair of a query: the raw text as sent, and the name and value decoded the
/// way `application/x-www-form-urlencoded` decodes them (`%6B` → `k`, `+` → space).
struct Param<'a> {
    raw: &'a str,
    name: Cow<'a, str>,
    value: Cow<'a, str>,
}

fn params(query: &str) -> impl Iterator<Item = Param<'_>> {
    query.split('&').filter(|raw| !raw.is_empty()).map(|raw| {
        let (name, value) = url::form_urlencoded::parse(raw.as_bytes())
            .next()
            .unwrap_or_default();
        Param { raw, name, value }
    })
}

/// The definition of a credential parameter: a name that decodes to `key` in any ASCII case
/// (`key`, `KEY`, `k%65y`, `%4B%45%59`). Reading and stripping both ask this, so no spelling can
/// authenticate and still be forwarded or logged.
fn is_credential_name(decoded: &str) -> bool {
    decoded.eq_ignore_ascii_case("key")
}

fn query_key(query: &str) -> Option<String> {
    params(query)
        .find(|p| is_credential_name(&p.name) && !p.value.is_empty())
        .map(|p| p.value.into_owned())
}

/// The query string without any credential parameter (every spelling [`extract`] reads, empty
/// values too). A query without one is returned unchanged, byte for byte.
pub fn query_without_key(query: &str) -> String {
    if !params(query).any(|p| is_credential_name(&p.name)) {
        return query.to_string();
    }
    params(query)
        .filter(|p| !is_credential_name(&p.name))
        .map(|p| p.raw)
        .collect::<Vec<_>>()
        .join("&")
}

/// What a redacted value reads as in a log line.
pub const REDACTED: &str = "[redacted]";

/// Fragments of parameter names whose values are secrets, or may be: `key`, `key_value`,
/// `auth_key`, `api_key`, `access_token`, `password`… Matched against the decoded, lower-cased
/// name, so `Key_Value` and `%6Bey_value` count too. Broad on purpose: a redacted harmless value
/// costs a log reader little, a logged secret costs a rotation.
const SECRET_NAME_PARTS: [&str; 7] = [
    "key",
    "token",
    "secret",
    "passw",
    "auth",
    "credential",
    "signature",
];

fn is_secret_like_name(decoded: &str) -> bool {
    let name = decoded.to_ascii_lowercase();
    is_credential_name(&name) || SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// The query string for a log line: every credential-like parameter keeps its name (as sent)
/// with its value replaced by [`REDACTED`]; other parameters stay as sent.
pub fn redacted_query(query: &str) -> Cow<'_, str> {
    if !params(query).any(|p| is_secret_like_name(&p.name)) {
        return Cow::Borrowed(query);
    }
    let parts: Vec<Cow<'_, str>> = params(query)
        .map(|p| {
            if is_secret_like_name(&p.name) {
                let raw_name = p.raw.split_once('=').map_or(p.raw, |(n, _)| n);
                Cow::Owned(format!("{raw_name}={REDACTED}"))
            } else {
                Cow::Borrowed(p.raw)
            }
        })
        .collect();
    Cow::Owned(parts.join("&"))
}

/// True when `candidate` equals one of `accepted`. Each comparison takes time independent of
/// where the strings differ, and every accepted key is compared.
pub fn matches_any(candidate: &str, accepted: &[String]) -> bool {
    let mut found = subtle::Choice::from(0u8);
    for key in accepted {
        found |= candidate.as_bytes().ct_eq(key.as_bytes());
    }
    found.into()
}

/// The position of `candidate` in `accepted`, compared like [`matches_any`]: every accepted key
/// is compared, each in constant time.
pub fn position(candidate: &str, accepted: &[String]) -> Option<usize> {
    let mut found = None;
    for (i, key) in accepted.iter().enumerate() {
        let equal: bool = candidate.as_bytes().ct_eq(key.as_bytes()).into();
        if equal && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// A non-secret name for the proxy key that authenticated a request: its list (`global` or
/// `group`), its 1-based place there, and the first 8 hex digits of its stored hash (keyed by
/// `ENCRYPTION_KEY` when one is set), so a reordered list still tells keys apart.
pub fn identity(scope: &str, index: usize, key_hash: &str) -> String {
    let fingerprint: String = key_hash.chars().take(8).collect();
    format!("{scope} #{} · {fingerprint}", index + 1)
}

/// Identities of the proxy keys seen lately, so that a request does not hash its key again
/// (an HMAC per request, ~1 µs). Only keys that authenticated get here, so the map is bounded by
/// the configured proxy keys; it is emptied if it ever reaches [`IDENTITY_CACHE_LIMIT`] (keys
/// rotated many times over).
#[derive(Default)]
pub struct IdentityCache(parking_lot::RwLock<HashMap<String, (&'static str, usize, String)>>);

const IDENTITY_CACHE_LIMIT: usize = 4096;

impl IdentityCache {
    /// [`identity`] of `credential` at `index` of the `scope` list, `hash` computing its stored
    /// hash when it is not known yet.
    pub fn get(
        &self,
        credential: &str,
        scope: &'static str,
        index: usize,
        hash: impl FnOnce() -> String,
    ) -> String {
        if let Some((s, i, id)) = self.0.read().get(credential) {
            if *s == scope && *i == index {
                return id.clone();
            }
        }
        let id = identity(scope, index, &hash());
        let mut map = self.0.write();
        if map.len() >= IDENTITY_CACHE_LIMIT {
            map.clear();
        }
        map.insert(credential.to_string(), (scope, index, id.clone()));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn order_is_query_bearer_xapikey_xgoog() {
        let all = headers(&[
            ("authorization", "Bearer b"),
            ("x-api-key", "x"),
            ("x-goog-api-key", "g"),
        ]);
        assert_eq!(extract(&all, "a=1&key=q").as_deref(), Some("q"));
        assert_eq!(extract(&all, "a=1").as_deref(), Some("b"));
        assert_eq!(
            extract(&headers(&[("x-api-key", "x"), ("x-goog-api-key", "g")]), "").as_deref(),
            Some("x")
        );
        assert_eq!(
            extract(&headers(&[("x-goog-api-key", "g")]), "").as_deref(),
            Some("g")
        );
        assert_eq!(
            extract(&headers(&[("authorization", "Basic zzz")]), ""),
            None
        );
        assert_eq!(extract(&headers(&[]), "key="), None);
    }

    #[test]
    fn key_is_removed_from_the_query() {
        assert_eq!(query_without_key("alt=sse&key=abc&x=1"), "alt=sse&x=1");
        assert_eq!(query_without_key("key=abc"), "");
        assert_eq!(query_without_key("a=%20b&monkey=1"), "a=%20b&monkey=1");
    }

    #[test]
    fn every_spelling_that_authenticates_is_stripped() {
        for spelling in ["key", "KEY", "Key", "k%65y", "%6Bey", "%4B%45%59", "k%45Y"] {
            let query = format!("alt=sse&{spelling}=secret&x=1");
            assert_eq!(
                extract(&headers(&[]), &query).as_deref(),
                Some("secret"),
                "{spelling}"
            );
            assert_eq!(query_without_key(&query), "alt=sse&x=1", "{spelling}");
        }
        // Empty values authenticate nothing but go too; near misses are other parameters.
        assert_eq!(query_without_key("key=&KEY&a=1"), "a=1");
        assert_eq!(query_without_key("key%20=1&keys=2"), "key%20=1&keys=2");
        assert_eq!(extract(&headers(&[]), "keys=2&key%20=1"), None);
    }

    #[test]
    fn logs_redact_credential_like_values_in_any_spelling() {
        assert_eq!(redacted_query("page=2&status=ok"), "page=2&status=ok");
        assert_eq!(
            redacted_query("key_value=sk-1&page=2&Auth_Key=a&%6Bey=b&api%5Fkey=c&access_token=d"),
            "key_value=[redacted]&page=2&Auth_Key=[redacted]&%6Bey=[redacted]\
             &api%5Fkey=[redacted]&access_token=[redacted]"
        );
        assert_eq!(redacted_query("KEY"), "KEY=[redacted]");
    }

    #[test]
    fn matching_is_exact() {
        let keys = vec!["sk-one".to_string(), "sk-two".to_string()];
        assert!(matches_any("sk-two", &keys));
        assert!(!matches_any("sk-tw", &keys));
        assert!(!matches_any("", &keys));
        assert!(!matches_any("sk-one", &[]));
    }

    #[test]
    fn identities_name_the_list_and_place_but_never_the_key() {
        let keys = vec!["sk-one".to_string(), "sk-two-secret".to_string()];
        assert_eq!(position("sk-two-secret", &keys), Some(1));
        assert_eq!(position("sk-two", &keys), None);
        let hash = "0123456789abcdef0123";
        let id = identity("global", 1, hash);
        assert_eq!(id, "global #2 · 01234567");
        assert!(!id.contains("sk-two-secret"));
    }
}
