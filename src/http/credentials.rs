//! Where a client puts its credential (`?key=`, Bearer, `X-Api-Key`, `X-Goog-Api-Key`, in that
//! order, as GPT-Load reads them) and constant-time comparison against the accepted keys.

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

fn query_key(query: &str) -> Option<String> {
    if query.is_empty() {
        return None;
    }
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name == "key" && !value.is_empty())
        .map(|(_, value)| value.into_owned())
}

/// The query string without any `key` parameter. A query without one is returned unchanged,
/// byte for byte.
pub fn query_without_key(query: &str) -> String {
    if !query
        .split('&')
        .any(|p| p == "key" || p.starts_with("key="))
    {
        return query.to_string();
    }
    query
        .split('&')
        .filter(|p| !(p.is_empty() || *p == "key" || p.starts_with("key=")))
        .collect::<Vec<_>>()
        .join("&")
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
