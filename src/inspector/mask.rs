//! Masking credentials in captured headers before they are stored: the
//! value goes, what helps debugging stays (the auth scheme, cookie names).

/// Headers masked by default (compared case-insensitively): HTTP's
/// credentials, and `X-Api-Key`, which carries the gateway's consumer keys.
pub const DEFAULT_MASKED: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

const MASK: &str = "[masked]";

/// Whether a stored header value was masked (its secret is not there to resend).
pub fn is_masked(value: &str) -> bool {
    value.contains(MASK)
}

/// Masks the values of `headers` named in `names` (case-insensitive).
/// `Authorization: Bearer x` keeps `Bearer`; cookies keep their names.
pub fn mask_headers(headers: &mut [(String, String)], names: &[String]) {
    for (name, value) in headers.iter_mut() {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        *value = match name.to_ascii_lowercase().as_str() {
            "cookie" => value
                .split(';')
                .map(|c| match c.split_once('=') {
                    Some((k, _)) => format!("{}={MASK}", k.trim()),
                    None => MASK.to_string(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            "set-cookie" => match value.split_once('=') {
                // The cookie's name stays; its value and attributes go.
                Some((k, _)) => format!("{}={MASK}", k.trim()),
                None => MASK.to_string(),
            },
            _ => match value.split_once(' ') {
                // `Bearer …`, `Basic …`: the scheme stays.
                Some((scheme, _)) if !scheme.is_empty() => format!("{scheme} {MASK}"),
                _ => MASK.to_string(),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(extra: &[&str]) -> Vec<String> {
        DEFAULT_MASKED
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn credentials_are_masked_and_the_rest_kept() {
        let mut h: Vec<(String, String)> = [
            ("Authorization", "Bearer s3cr3t-token"),
            ("cookie", "session=abc123; theme=dark"),
            ("Set-Cookie", "session=abc123; Path=/; HttpOnly"),
            ("X-Api-Key", "k-999"),
            ("Content-Type", "application/json"),
            ("authorization", "opaque"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        mask_headers(&mut h, &names(&["x-api-key"]));
        let all: String = h.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        for secret in ["s3cr3t", "abc123", "dark", "k-999", "opaque", "HttpOnly"] {
            assert!(!all.contains(secret), "{secret} left in {all}");
        }
        assert_eq!(h[0].1, "Bearer [masked]");
        assert_eq!(h[1].1, "session=[masked]; theme=[masked]");
        assert_eq!(h[2].1, "session=[masked]");
        assert_eq!(h[4].1, "application/json");
    }
}
