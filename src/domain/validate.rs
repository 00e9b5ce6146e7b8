//! Syntax rules shared by the aggregates: slugs, DNS labels and host names.

use super::DomainError;

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
