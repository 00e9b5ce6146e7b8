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
