//! The custom-domain aggregate: pending until its DNS TXT record is found.
//! Adding is decided by the `Directory`, which keeps host names unique.

use beamd_events::vocabulary::{DomainRemoved, DomainVerificationFailed, DomainVerified};
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
}

/// Commands to an added domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCommand {
    /// Record the outcome of a DNS lookup done by the caller.
    Verify {
        /// The TXT values found at `txt_name()`, or the lookup's error.
        found: Result<Vec<String>, String>,
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
            _ => {}
        }
    }
}

impl Aggregate for DomainName {
    type Command = DomainCommand;
    const PREFIX: &'static str = "dom";

    fn decide(&self, command: &DomainCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if matches!(self.status, DomainStatus::Missing | DomainStatus::Removed) {
            return Err(DomainError::NotFound("domain".into()));
        }
        match command {
            DomainCommand::Remove => Ok(vec![DomainRemoved {}.into()]),
            // Once verified, a domain stays verified until it is removed.
            DomainCommand::Verify { .. } if self.status == DomainStatus::Verified => Ok(vec![]),
            DomainCommand::Verify { found: Ok(values) } => {
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
            DomainCommand::Verify { found: Err(lookup) } => Ok(vec![DomainVerificationFailed {
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
    use crate::domain::testkit::{envelope, given, round_trip};
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
}
