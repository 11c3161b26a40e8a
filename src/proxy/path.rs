//! The upstream path of a proxied request: what follows `/proxy/{group}`, still percent-encoded,
//! and the check that keeps it under the upstream's base path.

/// Rounds of percent-decoding tried when looking for dot segments: an upstream behind another
/// proxy may decode twice.
const DECODE_ROUNDS: usize = 3;

/// The group named in a `/proxy/{group}/...` path, as sent. Group names are plain
/// (`[a-z0-9_-]`), so the segment is not percent-decoded: an encoded name matches no group.
pub fn group_name(path: &str) -> &str {
    path.strip_prefix("/proxy/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

/// The inbound path with `/proxy/{group}` removed, as sent (still percent-encoded).
pub fn upstream_path<'a>(path: &'a str, group: &str) -> &'a str {
    path.strip_prefix("/proxy/")
        .and_then(|rest| rest.strip_prefix(group))
        .unwrap_or("")
}

/// False when a segment is `.` or `..`, raw or percent-encoded (`%2e`, `%2E`, mixed, `%2f` and
/// `\` taken as separators): appended to a base URL such as `http://host/tenantA/v1`, it could
/// reach a route outside `/tenantA/v1` on an upstream that normalises paths.
pub fn is_confined(path: &str) -> bool {
    let mut current = path.as_bytes().to_vec();
    for _ in 0..DECODE_ROUNDS {
        let has_dot_segment = current
            .split(|b| *b == b'/' || *b == b'\\')
            .any(|segment| segment == b"." || segment == b"..");
        if has_dot_segment {
            return false;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    true
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(hi), Some(lo)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_the_segment_after_proxy() {
        assert_eq!(group_name("/proxy/g1/v1/chat/completions"), "g1");
        assert_eq!(group_name("/proxy/g1"), "g1");
        assert_eq!(group_name("/proxy/"), "");
        assert_eq!(group_name("/api/x"), "");
    }

    #[test]
    fn path_after_group_is_kept_verbatim() {
        assert_eq!(
            upstream_path("/proxy/oa/v1/chat/completions", "oa"),
            "/v1/chat/completions"
        );
        assert_eq!(upstream_path("/proxy/oa", "oa"), "");
        assert_eq!(upstream_path("/proxy/oa/v1/a%20b", "oa"), "/v1/a%20b");
    }

    #[test]
    fn dot_segments_in_any_spelling_are_refused() {
        for bad in [
            "/../../tenantB/v1/chat/completions",
            "/v1/./models",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/v1/%2e",
            "/v1/..%2fx",
            "/v1/..%2F..%2Fx",
            "/v1\\..\\x",
            "/%252e%252e/x",
            "/v1/..",
        ] {
            assert!(!is_confined(bad), "{bad}");
        }
        for good in [
            "/v1/chat/completions",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "/v1/models/a..b",
            "/v1/...",
            "/v1/.well",
            "/v1/a%20b",
            "",
            "/v1/100%",
        ] {
            assert!(is_confined(good), "{good}");
        }
    }
}
