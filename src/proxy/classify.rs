//! Failure classes of upstream answers, decided from structured data: the status code, the
//! provider's error type/code/reason fields and `Retry-After` — never by searching message text.

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use gpt_load_actors::key_state::FailureClass;
use serde_json::Value;

/// Provider error codes that mean the key itself is unusable (revoked, invalid, out of credit),
/// whatever the status says.
const DEAD_KEY_CODES: [&str; 5] = [
    "invalid_api_key",
    "insufficient_quota",
    "API_KEY_INVALID",
    "account_deactivated",
    "billing_not_active",
];

/// The class of an upstream error answer.
pub fn classify_status(
    status: u16,
    retry_after: Option<Duration>,
    body: Option<&[u8]>,
) -> FailureClass {
    let codes = body.map(error_codes).unwrap_or_default();
    if codes.iter().any(|c| DEAD_KEY_CODES.contains(&c.as_str())) {
        return FailureClass::KeyDead;
    }
    match status {
        401..=403 => FailureClass::KeyDead,
        429 => FailureClass::RateLimited { retry_after },
        408 | 500..=599 => FailureClass::UpstreamTrouble,
        _ => FailureClass::RequestFault,
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// Machine-readable error fields of the providers' error bodies: OpenAI's `error.code` and
/// `error.type`, Anthropic's `error.type`, Gemini's `error.status` and `error.details[].reason`.
fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let error = value.get("error").unwrap_or(&Value::Null);
    let mut out: Vec<String> = ["code", "type", "status"]
        .iter()
        .filter_map(|f| error.get(*f).and_then(Value::as_str).map(str::to_string))
        .collect();
    if let Some(details) = error.get("details").and_then(Value::as_array) {
        out.extend(
            details
                .iter()
                .filter_map(|d| d.get("reason").and_then(Value::as_str))
                .map(str::to_string),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn statuses_and_provider_codes_decide() {
        assert_eq!(classify_status(401, None, None), FailureClass::KeyDead);
        assert_eq!(
            classify_status(
                403,
                None,
                Some(br#"{"error":{"status":"PERMISSION_DENIED"}}"#)
            ),
            FailureClass::KeyDead
        );
        let gemini_bad_key = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(
            classify_status(400, None, Some(gemini_bad_key)),
            FailureClass::KeyDead
        );
        let quota = br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(
            classify_status(429, None, Some(quota)),
            FailureClass::KeyDead,
            "no credit left is a dead key"
        );
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify_status(429, wait, None),
            FailureClass::RateLimited { retry_after: wait }
        );
        assert_eq!(
            classify_status(503, None, None),
            FailureClass::UpstreamTrouble
        );
        assert_eq!(
            classify_status(
                529,
                None,
                Some(br#"{"type":"error","error":{"type":"overloaded_error"}}"#)
            ),
            FailureClass::UpstreamTrouble
        );
        assert_eq!(
            classify_status(
                400,
                None,
                Some(br#"{"error":{"message":"context too long"}}"#)
            ),
            FailureClass::RequestFault
        );
        assert_eq!(classify_status(404, None, None), FailureClass::RequestFault);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("retry-after"),
            HeaderValue::from_static("30"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        let date = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(
            HeaderName::from_static("retry-after"),
            HeaderValue::from_str(&date).unwrap(),
        );
        let got = retry_after(&headers).unwrap().as_secs();
        assert!((115..=120).contains(&got), "{got}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
