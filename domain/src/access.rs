//! Who may use an HTTP tunnel: HTTP basic auth, client networks (CIDR) and
//! sign-in with OpenID Connect (who is let in once signed in), set by the
//! agent and checked at the edge before a request reaches it. The client is
//! the TCP peer of the public connection, never a header the client could
//! forge; the signed-in person is who the edge's own session says, checked
//! against these rules on every request.

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
    /// Sign-in demanded before anything reaches the service.
    sign_in: Option<SignInRule>,
}

/// Sign-in with an OpenID provider: which provider and client, and who,
/// once signed in, is let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRule {
    /// The provider's issuer URL, as given.
    pub issuer: String,
    /// The client the edge signs people in as.
    pub client_id: String,
    /// Addresses let in (lowercase).
    emails: Vec<String>,
    /// Email domains let in (lowercase).
    domains: Vec<String>,
}

impl SignInRule {
    /// A rule from the agent's `--oidc-issuer`, `--oidc-client-id`,
    /// `--oidc-allow-email` and `--oidc-allow-domain` values.
    pub fn parse(
        issuer: &str,
        client_id: &str,
        emails: &[String],
        domains: &[String],
    ) -> Result<Self, String> {
        let scheme_ok = issuer.starts_with("https://") || issuer.starts_with("http://");
        if !scheme_ok || issuer.len() > 2048 || issuer.contains(char::is_whitespace) {
            return Err(format!(
                "the OpenID issuer {issuer:?} is not an http(s) URL"
            ));
        }
        if client_id.is_empty() || client_id.len() > 512 {
            return Err("the OpenID client id must be 1 to 512 characters".into());
        }
        let emails = emails
            .iter()
            .map(|e| match e.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                    Ok(e.to_ascii_lowercase())
                }
                _ => Err(format!("{e:?} is not an email address")),
            })
            .collect::<Result<_, _>>()?;
        let domains = domains
            .iter()
            .map(|d| {
                let d = d.trim_start_matches('@');
                match !d.is_empty() && d.contains('.') && !d.contains(['@', '/', ' ']) {
                    true => Ok(d.to_ascii_lowercase()),
                    false => Err(format!("{d:?} is not an email domain (example.com)")),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            emails,
            domains,
        })
    }

    /// Whether a person the provider signed in is let in: with no allow
    /// list, anyone; else their email must be verified (never `false`) and
    /// be listed, or be in a listed domain.
    pub fn admits(&self, email: Option<&str>, verified: Option<bool>) -> Result<(), Denied> {
        if self.emails.is_empty() && self.domains.is_empty() {
            return Ok(());
        }
        let Some(email) = email.filter(|_| verified != Some(false)) else {
            return Err(Denied::NotAllowed);
        };
        let email = email.to_ascii_lowercase();
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if self.emails.contains(&email) || self.domains.iter().any(|d| d == domain) {
            Ok(())
        } else {
            Err(Denied::NotAllowed)
        }
    }
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client's address is outside every allowed network (403).
    Network,
    /// Credentials missing or wrong (401).
    Credentials,
    /// No sign-in yet, or one no longer valid (a redirect to the provider,
    /// or 401).
    SignIn,
    /// Signed in, but not someone the tunnel lets in (403).
    NotAllowed,
}

impl Denied {
    /// Why, as the request's capture records it (`RequestCaptured::refused`).
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Network => "network",
            Denied::Credentials => "credentials",
            Denied::SignIn => "sign_in",
            Denied::NotAllowed => "sign_in_not_allowed",
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
        Ok(Self {
            basic,
            allow,
            sign_in: None,
        })
    }

    /// The same rules, with sign-in demanded too (instead of basic auth:
    /// both would be two logins for one person).
    pub fn with_sign_in(mut self, rule: SignInRule) -> Result<Self, String> {
        if self.basic.is_some() {
            return Err("a tunnel has basic auth or OpenID sign-in, not both".into());
        }
        self.sign_in = Some(rule);
        Ok(self)
    }

    /// The sign-in demanded, if any.
    pub fn sign_in(&self) -> Option<&SignInRule> {
        self.sign_in.as_ref()
    }

    /// What the members of a pool must agree on, as the log records it:
    /// `""` when nothing is checked, else a digest of the networks let in,
    /// whether a password is asked (not which: the log keeps no credential,
    /// even hashed) and the sign-in rule (provider, client, allow lists).
    /// The same rules give the same digest whatever their order.
    pub fn digest(&self) -> String {
        if self.is_open() {
            return String::new();
        }
        fn field(h: &mut blake3::Hasher, text: &str) {
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        fn set(items: impl Iterator<Item = String>) -> String {
            let mut items: Vec<String> = items.collect();
            items.sort();
            items.dedup();
            items.join(",")
        }
        let mut h = blake3::Hasher::new();
        field(&mut h, "beamd access rules 1");
        field(
            &mut h,
            &set(self.allow.iter().map(|n| n.trunc().to_string())),
        );
        field(&mut h, if self.basic.is_some() { "password" } else { "" });
        if let Some(r) = &self.sign_in {
            field(&mut h, &r.issuer);
            field(&mut h, &r.client_id);
            field(&mut h, &set(r.emails.iter().cloned()));
            field(&mut h, &set(r.domains.iter().cloned()));
        }
        h.finalize().to_hex()[..32].to_string()
    }

    /// Whether anything is checked at all.
    pub fn is_open(&self) -> bool {
        self.basic.is_none() && self.allow.is_empty() && self.sign_in.is_none()
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

    fn rule(emails: &[&str], domains: &[&str]) -> SignInRule {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        SignInRule::parse("https://id.example", "beamd", &own(emails), &own(domains)).unwrap()
    }

    #[test]
    fn sign_in_lets_in_listed_addresses_and_domains_verified_only() {
        let open = rule(&[], &[]);
        assert_eq!(open.admits(None, None), Ok(()), "no list: anyone signed in");
        let r = rule(&["Alice@Example.test"], &["corp.example"]);
        assert_eq!(r.admits(Some("alice@example.TEST"), Some(true)), Ok(()));
        assert_eq!(r.admits(Some("bob@corp.example"), None), Ok(()));
        assert_eq!(
            r.admits(Some("bob@corp.example"), Some(false)),
            Err(Denied::NotAllowed),
            "an unverified address is not trusted"
        );
        assert_eq!(
            r.admits(Some("mallory@elsewhere.test"), Some(true)),
            Err(Denied::NotAllowed)
        );
        assert_eq!(
            r.admits(Some("eve@evilcorp.example"), Some(true)),
            Err(Denied::NotAllowed)
        );
        assert_eq!(
            r.admits(Some("x@sub.corp.example"), Some(true)),
            Err(Denied::NotAllowed)
        );
        assert_eq!(r.admits(None, None), Err(Denied::NotAllowed));
    }

    #[test]
    fn sign_in_rules_refuse_bad_values_and_basic_auth_beside_them() {
        let none: Vec<String> = Vec::new();
        assert!(SignInRule::parse("ftp://id.example", "c", &none, &none).is_err());
        assert!(SignInRule::parse("https://id.example", "", &none, &none).is_err());
        assert!(SignInRule::parse("https://id.example", "c", &["alice".into()], &none).is_err());
        assert!(SignInRule::parse("https://id.example", "c", &none, &["a@b.c".into()]).is_err());
        let basic = Access::parse(Some("u:p"), &[]).unwrap();
        assert!(basic.with_sign_in(rule(&[], &[])).is_err());
        let signed = Access::parse(None, &[])
            .unwrap()
            .with_sign_in(rule(&[], &[]))
            .unwrap();
        assert!(!signed.is_open());
    }

    #[test]
    fn the_digest_names_the_rules_whatever_their_order_and_no_password() {
        let nets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let digest = |basic: Option<&str>, allow: &[&str]| {
            Access::parse(basic, &nets(allow)).unwrap().digest()
        };
        assert_eq!(Access::default().digest(), "", "open: nothing to agree on");
        let a = digest(None, &["10.0.0.0/8", "192.0.2.7"]);
        assert_eq!(a, digest(None, &["192.0.2.7/32", "10.1.2.3/8"]));
        assert_ne!(a, digest(None, &["10.0.0.0/8"]));
        // Whether a password is asked counts; which one never reaches the log.
        let p = digest(Some("u:one"), &[]);
        assert_ne!(p, "");
        assert_eq!(p, digest(Some("v:two"), &[]));
        let signed = |emails: &[&str], domains: &[&str]| {
            Access::default()
                .with_sign_in(rule(emails, domains))
                .unwrap()
                .digest()
        };
        let s = signed(&["a@x.example", "b@x.example"], &["corp.example"]);
        assert_eq!(
            s,
            signed(&["B@x.example", "a@x.example"], &["corp.example"])
        );
        assert_ne!(s, signed(&["a@x.example"], &["corp.example"]));
        assert_ne!(s, signed(&[], &[]));
        assert_ne!(signed(&[], &[]), "");
    }
}
