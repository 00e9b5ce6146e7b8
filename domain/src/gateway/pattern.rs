//! Route path patterns: `/literal/:param/*`. A pattern is literal segments,
//! named parameters (`:id`, one whole segment) and at most one trailing `*`
//! (any rest, including nothing).
//!
//! The most specific matching pattern wins, compared segment by segment from
//! the left: a literal beats a parameter, a parameter beats the wildcard;
//! when one pattern is a prefix of the other, the longer one wins, and a
//! pattern without a wildcard beats the same pattern with one.

use std::cmp::Ordering;

use super::super::DomainError;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param => 1,
            Segment::Rest => 0,
        }
    }
}

/// What `PathPattern::parse` takes, as an ECMA-262 pattern (with a length
/// of 1 to `PATH_PATTERN_MAX`): segments after one or more `/`, each a
/// `:param` of letters, digits and `_` or a literal without `*`, `:`, space
/// or ASCII control, and at most one `*`, last.
pub const PATH_PATTERN: &str = "^(/+(:[A-Za-z0-9_]+|[^/*: \\u0000-\\u001f\\u007f]+))*(/+\\*)?/*$";
/// The longest path pattern, in characters.
pub const PATH_PATTERN_MAX: usize = 512;

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl PathPattern {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let bad = |why: &str| DomainError::InvalidRequest(format!("pathPattern {text:?}: {why}"));
        if !text.starts_with('/') || text.chars().count() > PATH_PATTERN_MAX {
            return Err(bad("must start with '/' and be at most 512 characters"));
        }
        let parts: Vec<&str> = segments(text).collect();
        let mut out = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "*" if i + 1 == parts.len() => Segment::Rest,
                "*" => return Err(bad("'*' may only be the last segment")),
                p if p.starts_with(':') => {
                    let name = &p[1..];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(bad("a parameter is ':' and letters, digits or '_'"));
                    }
                    Segment::Param
                }
                p if p
                    .bytes()
                    .any(|b| b == b'*' || b == b':' || b.is_ascii_control() || b == b' ') =>
                {
                    return Err(bad(
                        "a literal segment may not hold '*', ':', spaces or control characters",
                    ))
                }
                p => Segment::Literal(p.to_string()),
            };
            out.push(segment);
        }
        Ok(Self { segments: out })
    }

    /// Whether `path` (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = segments(path);
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Param => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// How `self` compares with `other` in specificity (`Greater`: `self` wins).
    pub fn specificity(&self, other: &Self) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match a.rank().cmp(&b.rank()) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        let rest = |p: &Self| p.segments.last() == Some(&Segment::Rest);
        let exact = |p: &Self| p.segments.len() - usize::from(rest(p));
        exact(self)
            .cmp(&exact(other))
            .then_with(|| rest(other).cmp(&rest(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn the_published_pattern_says_what_parse_does() {
        let rule = regex::Regex::new(PATH_PATTERN).unwrap();
        let long = format!("/{}", "a".repeat(PATH_PATTERN_MAX - 1));
        let longer = format!("/{}", "é".repeat(PATH_PATTERN_MAX));
        let cases = [
            "",
            "/",
            "//",
            "a",
            "*",
            "/*",
            "/*/",
            "/**",
            "/a*",
            "/*/a",
            "/a/*",
            "/a//b",
            "/:",
            "/:id",
            "/:i-d",
            "/:id/*",
            "/a:b",
            "/a b",
            "/a\u{7f}",
            "/a\u{1}",
            "/a\u{85}",
            "/é",
            "/a/:b_2/c",
            "/users/:id/",
            "/x/*//",
            &long,
            &longer,
        ];
        for case in cases {
            let n = case.chars().count();
            assert_eq!(
                PathPattern::parse(case).is_ok(),
                (1..=PATH_PATTERN_MAX).contains(&n) && rule.is_match(case),
                "{case:?}"
            );
        }
    }

    #[test]
    fn matching() {
        assert!(p("/users/:id").matches("/users/42"));
        assert!(!p("/users/:id").matches("/users"));
        assert!(!p("/users/:id").matches("/users/42/posts"));
        assert!(p("/users/*").matches("/users"));
        assert!(p("/users/*").matches("/users/42/posts"));
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/a"));
        assert!(p("/*").matches("/anything/at/all"));
    }

    #[test]
    fn the_most_specific_wins() {
        assert_eq!(
            p("/users/me").specificity(&p("/users/:id")),
            Ordering::Greater
        );
        assert_eq!(
            p("/users/:id").specificity(&p("/users/*")),
            Ordering::Greater
        );
        assert_eq!(
            p("/users/:id/posts").specificity(&p("/users/:id")),
            Ordering::Greater
        );
        assert_eq!(p("/users").specificity(&p("/users/*")), Ordering::Greater);
        assert_eq!(p("/a/:b").specificity(&p("/a/:c")), Ordering::Equal);
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["users", "/a/*/b", "/a/:", "/a/b c", "/a/:x-y"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
