//! The custom-domain aggregate: pending until its DNS TXT record is found,
//! and only for a while (a claim that stays pending past its lifetime
//! lapses); and the rule every request is held to: a host reaches a tenant
//! only while it is that tenant's. Adding is decided by the `Directory`,
//! which keeps host names unique and counts pending claims.

use beamd_events::vocabulary::{
    DomainClaimExpired, DomainRemoved, DomainVerificationFailed, DomainVerified,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::{Aggregate, Ctx, DomainError};

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DomainStatus {
    /// Never added.
    #[default]
    Missing,
    /// Waiting for the TXT record (`failure` says why the last check missed).
    Pending,
    /// The TXT record was found.
    Verified,
    /// Removed.
    Removed,
    /// Stayed pending past the claim lifetime; its host is free.
    Expired,
}

/// How long a claim may stay pending unless the operator says otherwise: 72 h.
pub const DEFAULT_CLAIM_TTL_MS: u64 = 72 * 3600 * 1000;

/// Whether a claim added at `added_at` and still pending has lapsed at `now_ms`.
pub fn claim_lapsed(added_at: u64, now_ms: u64, ttl_ms: u64) -> bool {
    now_ms >= added_at.saturating_add(ttl_ms)
}

/// Whether a request for `host` may reach `tenant`, whose tunnels live
/// under `tunnel_base`: the host is one of its tunnel names
/// (`NAME.<tunnel_base>`), or `claim` (the domain registered for the host)
/// is verified for it. Checked on every request, not only when a route or
/// tunnel was made.
pub fn host_reaches(
    host: &str,
    tenant: &str,
    tunnel_base: &str,
    claim: Option<&DomainName>,
) -> bool {
    let tunnel_name = !tunnel_base.is_empty()
        && host
            .strip_suffix(tunnel_base)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|name| !name.is_empty() && !name.contains('.'));
    tunnel_name
        || claim.is_some_and(|d| {
            d.host == host && d.tenant == tenant && d.status == DomainStatus::Verified
        })
}

/// A custom domain's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainName {
    /// `dom_…` (its stream id).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The host name.
    pub host: String,
    /// The TXT value to publish.
    pub txt_token: String,
    /// Lifecycle.
    pub status: DomainStatus,
    /// Why the last verification failed.
    pub failure: Option<String>,
    /// When added.
    pub created_at: Option<u64>,
    /// When verified.
    pub verified_at: Option<u64>,
}

impl DomainName {
    /// The DNS name the TXT record goes under.
    pub fn txt_name(&self) -> String {
        format!("_beamd-challenge.{}", self.host)
    }

    /// Whether it is still pending past `ttl_ms` at `now_ms`.
    pub fn claim_lapsed(&self, now_ms: u64, ttl_ms: u64) -> bool {
        self.status == DomainStatus::Pending
            && self
                .created_at
                .is_some_and(|at| claim_lapsed(at, now_ms, ttl_ms))
    }
}

/// Commands to an added domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCommand {
    /// Record the outcome of a DNS lookup done by the caller (a claim that
    /// lapsed meanwhile expires instead).
    Verify {
        /// The TXT values found at `txt_name()`, or the lookup's error.
        found: Result<Vec<String>, String>,
        /// How long a claim may stay pending, ms.
        claim_ttl_ms: u64,
    },
    /// Let the claim lapse if it stayed pending longer than `ttl_ms`.
    ExpireClaim {
        /// How long a claim may stay pending, ms.
        ttl_ms: u64,
    },
    /// Remove the domain.
    Remove,
}

impl Fold for DomainName {
    const KIND: &'static str = "domain";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::DomainAdded(e) => {
                *self = DomainName {
                    id: envelope.stream.to_string(),
                    tenant: e.tenant.clone(),
                    host: e.host.clone(),
                    txt_token: e.txt_token.clone(),
                    status: DomainStatus::Pending,
                    failure: None,
                    created_at: Some(envelope.at),
                    verified_at: None,
                }
            }
            Event::DomainVerified(_) => {
                self.status = DomainStatus::Verified;
                self.failure = None;
                self.verified_at = Some(envelope.at);
            }
            Event::DomainVerificationFailed(e) => {
                self.failure = Some(e.reason.clone());
            }
            Event::DomainRemoved(_) => self.status = DomainStatus::Removed,
            Event::DomainClaimExpired(_) => self.status = DomainStatus::Expired,
            _ => {}
        }
    }
}

impl Aggregate for DomainName {
    type Command = DomainCommand;
    const PREFIX: &'static str = "dom";

    fn decide(&self, command: &DomainCommand, ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if matches!(
            self.status,
            DomainStatus::Missing | DomainStatus::Removed | DomainStatus::Expired
        ) {
            return Err(DomainError::NotFound("domain".into()));
        }
        match command {
            DomainCommand::Remove => Ok(vec![DomainRemoved {}.into()]),
            DomainCommand::ExpireClaim { ttl_ms } => Ok(match self.claim_lapsed(ctx.now_ms, *ttl_ms) {
                true => vec![DomainClaimExpired {}.into()],
                false => vec![],
            }),
            // Once verified, a domain stays verified until it is removed.
            DomainCommand::Verify { .. } if self.status == DomainStatus::Verified => Ok(vec![]),
            DomainCommand::Verify { claim_ttl_ms, .. }
                if self.claim_lapsed(ctx.now_ms, *claim_ttl_ms) =>
            {
                Ok(vec![DomainClaimExpired {}.into()])
            }
            DomainCommand::Verify {
                found: Ok(values), ..
            } => {
                if values.iter().any(|v| v.trim_matches('"') == self.txt_token) {
                    Ok(vec![DomainVerified {}.into()])
                } else {
                    let found = if values.is_empty() {
                        "no TXT record".to_string()
                    } else {
                        values
                            .iter()
                            .map(|v| format!("\"{}\"", v.trim_matches('"')))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let reason = format!(
                        "expected a TXT record {} with the value \"{}\", found {found}",
                        self.txt_name(),
                        self.txt_token
                    );
                    Ok(vec![DomainVerificationFailed { reason }.into()])
                }
            }
            DomainCommand::Verify {
                found: Err(lookup), ..
            } => Ok(vec![DomainVerificationFailed {
                reason: format!(
                    "expected a TXT record {} with the value \"{}\", but the DNS lookup failed: {lookup}",
                    self.txt_name(),
                    self.txt_token
                ),
            }
            .into()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{envelope, given, round_trip};
    use beamd_events::vocabulary::DomainAdded;

    fn added() -> DomainName {
        given(
            "dom_1",
            5,
            vec![DomainAdded {
                tenant: "ten_1".into(),
                host: "app.example.com".into(),
                txt_token: "tok123".into(),
            }
            .into()],
        )
    }

    #[test]
    fn verifies_only_with_the_token() {
        let mut d = added();
        let ctx = Ctx::new(0, 0);
        let miss = d
            .decide(
                &DomainCommand::Verify {
                    found: Ok(vec!["other".into()]),
                    claim_ttl_ms: DEFAULT_CLAIM_TTL_MS,
                },
                &ctx,
            )
            .unwrap();
        assert!(matches!(&miss[0], Event::DomainVerificationFailed(f)
            if f.reason.contains("\"tok123\"") && f.reason.contains("\"other\"")));
        d.apply(&envelope("dom_1", 2, 8, miss[0].clone()));
        assert_eq!(d.status, DomainStatus::Pending);
        let err = d
            .decide(
                &DomainCommand::Verify {
                    found: Err("NXDOMAIN".into()),
                    claim_ttl_ms: DEFAULT_CLAIM_TTL_MS,
                },
                &ctx,
            )
            .unwrap();
        assert!(
            matches!(&err[0], Event::DomainVerificationFailed(f) if f.reason.contains("NXDOMAIN"))
        );
        let hit = d
            .decide(
                &DomainCommand::Verify {
                    found: Ok(vec!["\"tok123\"".into()]),
                    claim_ttl_ms: DEFAULT_CLAIM_TTL_MS,
                },
                &ctx,
            )
            .unwrap();
        d.apply(&envelope("dom_1", 3, 9, hit[0].clone()));
        assert_eq!((d.status, d.verified_at), (DomainStatus::Verified, Some(9)));
        round_trip(&d);
    }

    #[test]
    fn removed_domains_are_gone() {
        let mut d = added();
        let ctx = Ctx::new(0, 0);
        let ev = d.decide(&DomainCommand::Remove, &ctx).unwrap();
        d.apply(&envelope("dom_1", 2, 9, ev[0].clone()));
        assert_eq!(
            d.decide(&DomainCommand::Remove, &ctx).unwrap_err().code(),
            "not_found"
        );
    }

    #[test]
    fn a_claim_pending_past_its_lifetime_lapses_and_cannot_be_verified() {
        let d = added();
        let lapsed = Ctx::new(5 + 100, 0);
        let expire = DomainCommand::ExpireClaim { ttl_ms: 100 };
        assert!(d.decide(&expire, &Ctx::new(104, 0)).unwrap().is_empty());
        let ev = d.decide(&expire, &lapsed).unwrap();
        assert_eq!(ev, vec![DomainClaimExpired {}.into()]);
        let verify = DomainCommand::Verify {
            found: Ok(vec!["tok123".into()]),
            claim_ttl_ms: 100,
        };
        assert_eq!(
            d.decide(&verify, &lapsed).unwrap(),
            ev,
            "too late to verify"
        );
        let mut gone = d.clone();
        gone.apply(&envelope("dom_1", 2, 105, ev[0].clone()));
        assert_eq!(gone.status, DomainStatus::Expired);
        assert_eq!(
            gone.decide(&verify, &lapsed).unwrap_err().code(),
            "not_found"
        );
        let mut verified = d;
        let ok = verified.decide(&verify, &Ctx::new(50, 0)).unwrap();
        verified.apply(&envelope("dom_1", 2, 50, ok[0].clone()));
        assert!(
            !verified.claim_lapsed(1_000_000, 100),
            "a verified domain never lapses"
        );
    }

    #[test]
    fn a_host_reaches_a_tenant_only_while_it_is_the_tenants() {
        let mut d = added();
        let reaches = |d: &DomainName, tenant| {
            host_reaches("app.example.com", tenant, "t1.localhost", Some(d))
        };
        assert!(!reaches(&d, "ten_1"), "pending");
        d.apply(&envelope("dom_1", 2, 6, DomainVerified {}.into()));
        assert!(reaches(&d, "ten_1") && !reaches(&d, "ten_2"));
        d.apply(&envelope("dom_1", 3, 7, DomainRemoved {}.into()));
        assert!(!reaches(&d, "ten_1"), "removed");
        assert!(!host_reaches(
            "app.example.com",
            "ten_1",
            "t1.localhost",
            None
        ));
        assert!(host_reaches(
            "web.t1.localhost",
            "ten_1",
            "t1.localhost",
            None
        ));
        assert!(!host_reaches(
            "a.web.t1.localhost",
            "ten_1",
            "t1.localhost",
            None
        ));
        assert!(!host_reaches(
            "xt1.localhost",
            "ten_1",
            "t1.localhost",
            None
        ));
    }
}
