//! The `failover_status_codes` grammar: which upstream statuses count as a key failure and retry.

use std::fmt;

/// A parsed, sorted and merged set of inclusive status ranges. Empty matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCodeSet {
    ranges: Vec<(u16, u16)>,
}

/// Why a status-code spec was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid status code spec '{token}': {reason}")]
pub struct StatusCodeSpecError {
    pub token: String,
    pub reason: &'static str,
}

/// The grammar [`StatusCodeSet::parse`] accepts, as a regular expression (ECMA and Python alike),
/// for the OpenAPI document: codes and ranges separated by commas or line breaks, spaces and tabs
/// around them, empty entries allowed.
pub const SPEC_PATTERN: &str = r"^[ \t]*(?:[1-9][0-9]{2}(?:[ \t]*-[ \t]*[1-9][0-9]{2})?[ \t]*)?(?:[,\r\n][ \t]*(?:[1-9][0-9]{2}(?:[ \t]*-[ \t]*[1-9][0-9]{2})?[ \t]*)?)*$";

/// Spaces and tabs, the only blanks the grammar allows around codes.
const BLANKS: [char; 2] = [' ', '\t'];

impl StatusCodeSet {
    /// Parses `"400-403,405-999"`: comma or line-break separated codes and inclusive ranges
    /// (`500-400` is the same range as `400-500`), each code three digits from 100 to 999,
    /// spaces and tabs around them ignored, empty entries skipped. Exactly [`SPEC_PATTERN`].
    pub fn parse(spec: &str) -> Result<Self, StatusCodeSpecError> {
        let mut ranges = Vec::new();
        for raw in spec.split([',', '\n', '\r']) {
            let token = raw.trim_matches(BLANKS);
            if token.is_empty() {
                continue;
            }
            let (start, end) = match token.split_once('-') {
                Some((a, b)) => (parse_code(a, token)?, parse_code(b, token)?),
                None => {
                    let code = parse_code(token, token)?;
                    (code, code)
                }
            };
            ranges.push((start.min(end), start.max(end)));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Ok(Self { ranges: merged })
    }

    /// True when `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(start, end)| status >= start && status <= end)
    }
}

fn parse_code(text: &str, token: &str) -> Result<u16, StatusCodeSpecError> {
    let text = text.trim_matches(BLANKS);
    let error = |reason| StatusCodeSpecError {
        token: token.to_string(),
        reason,
    };
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error("a status code is three digits"));
    }
    let code: u16 = text.parse().map_err(|_| error("not a number"))?;
    if !(100..=999).contains(&code) {
        return Err(error("status codes must be between 100 and 999"));
    }
    Ok(code)
}

impl fmt::Display for StatusCodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_excludes_404() {
        let set = StatusCodeSet::parse("400-403,405-999").unwrap();
        for code in [400, 401, 403, 405, 429, 500, 503, 999] {
            assert!(set.contains(code), "{code}");
        }
        for code in [200, 301, 399, 404] {
            assert!(!set.contains(code), "{code}");
        }
    }

    #[test]
    fn ranges_are_sorted_merged_and_whitespace_tolerant() {
        let set = StatusCodeSet::parse(" 500 - 599 ,\n429,\t400-428,,\r\n").unwrap();
        assert_eq!(set.to_string(), "400-429,500-599");
    }

    #[test]
    fn empty_spec_matches_nothing() {
        let set = StatusCodeSet::parse("").unwrap();
        assert!(!set.contains(500));
    }

    #[test]
    fn bad_specs_are_rejected() {
        assert!(StatusCodeSet::parse("abc").is_err());
        assert!(StatusCodeSet::parse("99").is_err());
        assert!(StatusCodeSet::parse("1000").is_err());
        assert!(StatusCodeSet::parse("400-").is_err());
        assert!(StatusCodeSet::parse("4 00").is_err());
        assert!(StatusCodeSet::parse("+400").is_err());
        assert!(StatusCodeSet::parse("0400").is_err());
    }

    #[test]
    fn the_pattern_accepts_exactly_what_parses() {
        let pattern = regex::Regex::new(SPEC_PATTERN).unwrap();
        for spec in [
            "",
            "400-403,405-999",
            " 500 - 599 ,\n429,\t400-428,,\r\n",
            "500-400",
            ",",
            "429",
            "abc",
            "99",
            "1000",
            "400-",
            "4 00",
            "+400",
            "0400",
            "400 401",
            "400-401-402",
            "400;401",
            "\u{2003}400",
            "400\u{1c}",
        ] {
            assert_eq!(
                pattern.is_match(spec),
                StatusCodeSet::parse(spec).is_ok(),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn reversed_ranges_read_low_to_high() {
        assert_eq!(
            StatusCodeSet::parse("500-400").unwrap(),
            StatusCodeSet::parse("400-500").unwrap()
        );
    }
}
