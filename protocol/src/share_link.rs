//! `beamd://` share links: how an agent finds and trusts an edge, in one
//! string the API hands out and the agent reads.

/// The parts of a share link `beamd://TOKEN@HOST:PORT[,HOST:PORT…]?transport=…&fingerprint=…&tls=1`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShareLink {
    /// The agent token.
    pub token: String,
    /// The edge's agent address, or several edges' (comma-separated).
    pub edge: String,
    /// `transport=` (quic, ws, tcp).
    pub transport: Option<String>,
    /// `fingerprint=`.
    pub fingerprint: Option<String>,
    /// `tls=1`.
    pub tls: bool,
}

impl ShareLink {
    /// Parses a share link; `None` if `text` is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("beamd://")?;
        let (token, rest) = rest.split_once('@')?;
        let (edge, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut link = ShareLink {
            token: token.to_string(),
            edge: edge.trim_end_matches('/').to_string(),
            ..ShareLink::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("transport", v)) => link.transport = Some(v.to_string()),
                Some(("fingerprint", v)) => link.fingerprint = Some(v.to_string()),
                Some(("tls", v)) => link.tls = v == "1" || v == "true",
                _ => {}
            }
        }
        (!link.token.is_empty() && !link.edge.is_empty()).then_some(link)
    }
}

impl std::fmt::Display for ShareLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "beamd://{}@{}", self.token, self.edge)?;
        let mut sep = '?';
        let mut param = |f: &mut std::fmt::Formatter<'_>, k: &str, v: &str| {
            let r = write!(f, "{sep}{k}={v}");
            sep = '&';
            r
        };
        if let Some(t) = &self.transport {
            param(f, "transport", t)?;
        }
        if let Some(fp) = &self.fingerprint {
            param(f, "fingerprint", fp)?;
        }
        if self.tls {
            param(f, "tls", "1")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_links_parse() {
        let link = ShareLink::parse(
            "beamd://tok_a.s3cret@edge.example:7000?transport=ws&fingerprint=ab&tls=1",
        )
        .unwrap();
        assert_eq!(link.token, "tok_a.s3cret");
        assert_eq!(link.edge, "edge.example:7000");
        assert_eq!(link.transport.as_deref(), Some("ws"));
        assert_eq!(link.fingerprint.as_deref(), Some("ab"));
        assert!(link.tls);
        assert_eq!(
            link.to_string(),
            "beamd://tok_a.s3cret@edge.example:7000?transport=ws&fingerprint=ab&tls=1"
        );
        assert_eq!(ShareLink::parse(&link.to_string()), Some(link));
        let cluster =
            ShareLink::parse("beamd://tok_a.b@a.example:7000,b.example:7000?transport=auto")
                .unwrap();
        assert_eq!(cluster.edge, "a.example:7000,b.example:7000");
        assert_eq!(cluster.transport.as_deref(), Some("auto"));
        assert_eq!(ShareLink::parse("edge.example:7000"), None);
        assert_eq!(ShareLink::parse("beamd://@edge:1"), None);
    }
}
