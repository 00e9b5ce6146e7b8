//! Syntax rules shared by the aggregates: slugs, DNS labels, host names,
//! free text, email addresses and `http://` URLs. Each rule is a check here
//! and, beside it, the ECMA-262 pattern that says the same thing, which the
//! API's OpenAPI document publishes; the tests below hold the two to
//! agreement on strings chosen to sit on every edge of the rule.

use super::DomainError;

/// `label`'s pattern.
pub const LABEL_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
/// `host`'s pattern (with a length of at most 253).
pub const HOST_PATTERN: &str =
    "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$";
/// The longest host name.
pub const HOST_MAX: usize = 253;
/// `text`'s pattern (with a length of 1 to its maximum): no control
/// character (Unicode's `Cc`: U+0000–U+001F and U+007F–U+009F).
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// `email`'s pattern (with a length of at most 254): one `@`, something
/// before it, a `.` after it, and no control character or white space
/// (Unicode's `Cc` and `White_Space`) anywhere.
pub const EMAIL_PATTERN: &str = concat!(
    "^[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+",
    "@[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*",
    "\\.[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$",
);
/// The longest email address.
pub const EMAIL_MAX: usize = 254;
/// `http_url`'s pattern: `http://`, a host name or IPv4 address, an
/// optional port, an optional path and query of URL characters. (IPv6
/// literals are not taken: a pattern cannot tell `[::1]` from `[3:]`; name
/// such a service by a host name.)
pub const HTTP_URL_PATTERN: &str = concat!(
    "^http://[A-Za-z0-9.-]+",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    "([/?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$",
);

/// A slug or DNS label: 1..=63 of `a-z 0-9 -`, not starting or ending with `-`.
pub fn label(what: &str, s: &str) -> Result<(), DomainError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::InvalidRequest(format!(
            "{what} {s:?} must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
        )))
    }
}

/// A host name: dot-separated labels, at most 253 bytes.
pub fn host(what: &str, s: &str) -> Result<(), DomainError> {
    if s.is_empty() || s.len() > 253 {
        return Err(DomainError::InvalidRequest(format!(
            "{what} {s:?} is not a host name"
        )));
    }
    s.split('.').try_for_each(|part| label(what, part))
}

/// The routing key of a request's `Host` (or URI authority): lower case,
/// without a trailing `:port`. An IPv6 literal keeps its brackets.
pub fn request_host(raw: &str) -> String {
    raw.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(raw)
        .to_ascii_lowercase()
}

/// An email address as `EMAIL_PATTERN` says, in lower case.
pub fn email(s: &str) -> Result<String, DomainError> {
    let banned = |c: char| c.is_whitespace() || c.is_control();
    let ok = s.chars().count() <= EMAIL_MAX
        && !s.chars().any(banned)
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(DomainError::InvalidRequest(format!(
            "{s:?} is not an email address"
        )))
    }
}

/// An `http://` URL as `HTTP_URL_PATTERN` says.
pub fn http_url(what: &str, s: &str) -> Result<(), DomainError> {
    static RULE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(HTTP_URL_PATTERN).expect("HTTP_URL_PATTERN is a valid pattern")
    });
    if RULE.is_match(s) && s.parse::<http::Uri>().is_ok() {
        Ok(())
    } else {
        Err(DomainError::InvalidRequest(format!(
            "{what} {s:?} must be an http:// URL with a host"
        )))
    }
}

/// Free text of 1..=max characters.
pub fn text(what: &str, s: &str, max: usize) -> Result<(), DomainError> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(DomainError::InvalidRequest(format!(
            "{what} must be 1-{max} characters without control characters (got {n})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hosts_lose_their_port_and_case() {
        assert_eq!(request_host("App.Example.COM:8080"), "app.example.com");
        assert_eq!(request_host("app.example.com"), "app.example.com");
        assert_eq!(request_host("[::1]:443"), "[::1]");
        assert_eq!(request_host("[::1]"), "[::1]");
        assert_eq!(request_host("a:"), "a");
        assert_eq!(request_host(""), "");
    }

    /// Strings on the edges of every rule: empty, too long, each character
    /// class allowed and refused, and what a rule's neighbours allow.
    fn edges() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "a",
            "-",
            "a-",
            "-a",
            "a-b",
            "A",
            "a_b",
            "a.b",
            "a..b",
            ".a",
            "a.",
            "a b",
            " a",
            "a\u{0}",
            "a\u{1f}",
            "a\u{7f}",
            "a\u{85}",
            "a\u{9f}",
            "a\u{a0}",
            "a\u{2028}",
            "a\u{3000}",
            "é",
            "a@b",
            "a@b.c",
            "@b.c",
            "a@@b.c",
            "a@b@c.d",
            "a@.",
            "A@B.C",
            "a b@c.d",
            "a@b.c ",
            "\u{1680}a@b.c",
            "x@y\u{200b}.z",
            "http://",
            "http://a",
            "http://a:80/x?y=1",
            "http://a:65535",
            "http://a:65536",
            "http://[::1]:8080/",
            "http://[::1",
            "http://a/ b",
            "http://a/%zz",
            "https://a",
            "http://a#f",
            "http://a.b-c.d/x/y;z",
            "http://a:0",
            "http://:80",
            "http://a?q",
            "http://a/\u{e9}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        out.push("a".repeat(63));
        out.push("a".repeat(64));
        out.push(format!("{}.{}", "a".repeat(63), "b".repeat(63)));
        out.push(["a"; 127].join("."));
        out.push(["a"; 128].join("."));
        out.push(format!("{}@b.c", "a".repeat(250)));
        out.push(format!("{}@b.c", "a".repeat(251)));
        out.push(format!("{}@b.c", "é".repeat(250)));
        out
    }

    /// What a pattern says of `s`, as a JSON Schema validator reads it
    /// (`regex` reads these ECMA-262 patterns the same way).
    fn pattern(p: &str, s: &str) -> bool {
        regex::Regex::new(p).unwrap().is_match(s)
    }

    #[test]
    fn every_pattern_says_what_its_check_does() {
        for s in edges() {
            let n = s.chars().count();
            assert_eq!(
                label("l", &s).is_ok(),
                pattern(LABEL_PATTERN, &s),
                "label {s:?}"
            );
            assert_eq!(
                host("h", &s).is_ok(),
                n <= HOST_MAX && pattern(HOST_PATTERN, &s),
                "host {s:?}"
            );
            assert_eq!(
                text("t", &s, 80).is_ok(),
                (1..=80).contains(&n) && pattern(TEXT_PATTERN, &s),
                "text {s:?}"
            );
            assert_eq!(
                email(&s).is_ok(),
                n <= EMAIL_MAX && pattern(EMAIL_PATTERN, &s),
                "email {s:?}"
            );
            assert_eq!(
                http_url("u", &s).is_ok(),
                pattern(HTTP_URL_PATTERN, &s),
                "url {s:?}"
            );
        }
    }

    #[test]
    fn labels_and_hosts() {
        assert!(label("name", "my-app1").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(label("name", bad).is_err(), "{bad}");
        }
        assert!(host("host", "api.example.com").is_ok());
        assert!(host("host", "api..example.com").is_err());
        assert!(text("label", &"x".repeat(80), 80).is_ok());
        assert!(text("label", &"x".repeat(81), 80).is_err());
    }
}
