//! Who may use an HTTP tunnel: HTTP basic auth and client networks (CIDR),
//! set by the agent and checked at the edge before a request reaches it.
//! The client is the TCP peer of the public connection, never a header the
//! client could forge.

use std::net::IpAddr;

use base64::Engine;
use ipnet::IpNet;

/// A tunnel's access rules. The default lets everyone in.
#[derive(Debug, Default)]
pub struct Access {
    /// blake3 of `user:password`; compared in constant time.
    basic: Option<blake3::Hash>,
    /// Networks let in; empty lets every network in.
    allow: Vec<IpNet>,
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client's address is outside every allowed network (403).
    Network,
    /// Credentials missing or wrong (401).
    Credentials,
}

impl Denied {
    /// Why, as the request's capture records it (`RequestCaptured::refused`).
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Network => "network",
            Denied::Credentials => "credentials",
        }
    }
}

impl Access {
    /// Rules from the agent's `--basic-auth USER:PASSWORD` and `--allow CIDR` values.
    pub fn parse(basic_auth: Option<&str>, allow: &[String]) -> Result<Self, String> {
        let basic = match basic_auth {
            Some(pair) => match pair.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    Some(blake3::hash(pair.as_bytes()))
                }
                _ => return Err("basic auth must be USER:PASSWORD, both non-empty".into()),
            },
            None => None,
        };
        let allow = allow
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "{text:?} is not an IP network (CIDR such as 10.0.0.0/8) or address"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { basic, allow })
    }

    /// Whether anything is checked at all.
    pub fn is_open(&self) -> bool {
        self.basic.is_none() && self.allow.is_empty()
    }

    /// Checks a request from `client` carrying this `Authorization` header.
    pub fn check(&self, client: IpAddr, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
            v4 => v4,
        };
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&client)) {
            return Err(Denied::Network);
        }
        if let Some(expected) = &self.basic {
            let given = authorization
                .and_then(|h| {
                    h.strip_prefix(b"Basic ")
                        .or_else(|| h.strip_prefix(b"basic "))
                })
                .and_then(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim_ascii())
                        .ok()
                })
                .map(|pair| blake3::hash(&pair));
            // `blake3::Hash` equality is constant-time.
            if given.as_ref() != Some(expected) {
                return Err(Denied::Credentials);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
        .into_bytes()
    }

    #[test]
    fn open_by_default() {
        let a = Access::parse(None, &[]).unwrap();
        assert!(a.is_open());
        assert_eq!(a.check("203.0.113.9".parse().unwrap(), None), Ok(()));
    }

    #[test]
    fn networks_and_credentials() {
        let a = Access::parse(
            Some("ann:s3cret"),
            &["10.0.0.0/8".into(), "127.0.0.1".into()],
        )
        .unwrap();
        let local = "127.0.0.1".parse().unwrap();
        assert_eq!(a.check(local, Some(&basic("ann:s3cret"))), Ok(()));
        assert_eq!(
            a.check(
                "::ffff:127.0.0.1".parse().unwrap(),
                Some(&basic("ann:s3cret"))
            ),
            Ok(())
        );
        assert_eq!(a.check(local, None), Err(Denied::Credentials));
        assert_eq!(
            a.check(local, Some(&basic("ann:wrong"))),
            Err(Denied::Credentials)
        );
        assert_eq!(a.check(local, Some(b"Basic !!!")), Err(Denied::Credentials));
        assert_eq!(
            a.check("192.168.1.1".parse().unwrap(), Some(&basic("ann:s3cret"))),
            Err(Denied::Network)
        );
        assert_eq!(
            a.check("10.2.3.4".parse().unwrap(), Some(&basic("ann:s3cret"))),
            Ok(())
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(Access::parse(Some("nocolon"), &[]).is_err());
        assert!(Access::parse(Some(":pw"), &[]).is_err());
        assert!(Access::parse(None, &["10.0.0.0/33".into()]).is_err());
        assert!(Access::parse(None, &["example.com".into()]).is_err());
    }
}
