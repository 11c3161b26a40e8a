//! Weak-credential warnings for the dashboard: AUTH_KEY, ENCRYPTION_KEY and every global and
//! group proxy key are checked for length, common words and character variety.

use serde::Serialize;
use utoipa::ToSchema;

use super::i18n::{t, tf, Msg};

/// Substrings that make a secret guessable (matched case-insensitively).
const COMMON: [&str; 18] = [
    "password",
    "123456",
    "admin",
    "secret",
    "test",
    "demo",
    "sk-123456",
    "key",
    "token",
    "pass",
    "pwd",
    "qwerty",
    "abc",
    "default",
    "user",
    "login",
    "auth",
    "temp",
];

/// One warning.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SecurityWarning {
    /// What was checked, e.g. `Global Proxy Key #1`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// `high` or `medium`.
    pub severity: String,
    pub suggestion: String,
}

/// Warnings for one secret: shorter than 16 → high; 16–31 → medium; a common word → high;
/// fewer than 3 kinds of characters (upper, lower, digit, other) → medium.
pub fn check_secret(what: &str, secret: &str) -> Vec<SecurityWarning> {
    let warn = |msg: Msg, severity: &str| SecurityWarning {
        kind: what.to_string(),
        message: tf(msg, &[("what", &what)]),
        severity: severity.to_string(),
        suggestion: t(Msg::WarnSuggestion),
    };
    let mut out = Vec::new();
    let len = secret.chars().count();
    if len < 16 {
        out.push(warn(Msg::WarnTooShort, "high"));
    } else if len < 32 {
        out.push(warn(Msg::WarnShort, "medium"));
    }
    let lower = secret.to_ascii_lowercase();
    if COMMON.iter().any(|w| lower.contains(w)) {
        out.push(warn(Msg::WarnCommonWord, "high"));
    }
    if len >= 16 {
        let kinds = [
            secret.chars().any(|c| c.is_ascii_uppercase()),
            secret.chars().any(|c| c.is_ascii_lowercase()),
            secret.chars().any(|c| c.is_ascii_digit()),
            secret.chars().any(|c| !c.is_ascii_alphanumeric()),
        ];
        if kinds.iter().filter(|k| **k).count() < 3 {
            out.push(warn(Msg::WarnLowVariety, "medium"));
        }
    }
    out
}

/// What the service itself saw go wrong since start: request logs dropped because the database
/// could not keep up, and failing keys kept in service by the pool floor.
pub fn operational_warnings(logs_shed: u64, floor_hits: u64) -> Vec<SecurityWarning> {
    let mut out = Vec::new();
    if logs_shed > 0 {
        out.push(SecurityWarning {
            kind: t(Msg::WarnLogsShedType),
            message: tf(Msg::WarnLogsShed, &[("n", &logs_shed)]),
            severity: "high".into(),
            suggestion: t(Msg::WarnLogsShedSuggestion),
        });
    }
    if floor_hits > 0 {
        out.push(SecurityWarning {
            kind: t(Msg::WarnPoolFloorType),
            message: tf(Msg::WarnPoolFloor, &[("n", &floor_hits)]),
            severity: "medium".into(),
            suggestion: t(Msg::WarnPoolFloorSuggestion),
        });
    }
    out
}

/// All warnings: the admin key, the encryption key (missing → high), every global proxy key and
/// every group proxy key.
pub fn warnings(
    auth_key: &str,
    encryption_key: &str,
    global_proxy_keys: &[String],
    group_proxy_keys: &[(String, Vec<String>)],
) -> Vec<SecurityWarning> {
    let mut out = check_secret(&t(Msg::WarnAuthKeyType), auth_key);
    let encryption = t(Msg::WarnEncryptionKeyType);
    if encryption_key.is_empty() {
        out.push(SecurityWarning {
            kind: encryption,
            message: t(Msg::WarnEncryptionMissing),
            severity: "high".into(),
            suggestion: t(Msg::WarnEncryptionMissingSuggestion),
        });
    } else {
        out.extend(check_secret(&encryption, encryption_key));
    }
    for (i, key) in global_proxy_keys.iter().enumerate() {
        let what = tf(Msg::WarnGlobalProxyKeyType, &[("n", &(i + 1))]);
        out.extend(check_secret(&what, key));
    }
    for (group, keys) in group_proxy_keys {
        for (i, key) in keys.iter().enumerate() {
            let what = tf(
                Msg::WarnGroupProxyKeyType,
                &[("name", group), ("n", &(i + 1))],
            );
            out.extend(check_secret(&what, key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severities(w: &[SecurityWarning]) -> Vec<&str> {
        w.iter().map(|w| w.severity.as_str()).collect()
    }

    #[test]
    fn operational_warnings_appear_only_when_something_happened() {
        assert!(operational_warnings(0, 0).is_empty());
        let w = operational_warnings(7, 0);
        assert_eq!(severities(&w), vec!["high"]);
        assert!(w[0].message.contains('7'));
        let w = operational_warnings(0, 3);
        assert_eq!(severities(&w), vec!["medium"]);
        assert!(w[0].message.contains('3'));
        assert_eq!(operational_warnings(1, 1).len(), 2);
    }

    #[test]
    fn rules_follow_gpt_load() {
        assert_eq!(severities(&check_secret("k", "short")), vec!["high"]);
        assert_eq!(
            severities(&check_secret("k", "Ab1-Ab1-Ab1-Ab1-Zz")),
            vec!["medium"]
        );
        assert_eq!(
            severities(&check_secret("k", "mypassword-Is-Long-1234567890XYZ")),
            vec!["high"]
        );
        assert_eq!(
            severities(&check_secret("k", "alllowercaseletterswithoutvariety")),
            vec!["medium"]
        );
        assert!(check_secret("k", "Xq7#Vm2!Rz9$Lp4&Wn8*Ty3^Bh6@Kc1%").is_empty());
    }

    #[test]
    fn missing_encryption_key_is_high_and_keys_are_named() {
        let w = warnings(
            "Xq7#Vm2!Rz9$Lp4&Wn8*Ty3^Bh6@Kc1%",
            "",
            &["sk-1".into()],
            &[("g".into(), vec!["p".into()])],
        );
        assert_eq!(w[0].kind, "ENCRYPTION_KEY");
        assert_eq!(w[0].severity, "high");
        assert!(w.iter().any(|w| w.kind == "Global Proxy Key #1"));
        assert!(w.iter().any(|w| w.kind == "Group Proxy Key [g] #1"));
    }
}
