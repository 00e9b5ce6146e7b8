//! The gateway error aggregate: the failures of one route of one kind
//! (`unreachable`, `timeout`, `server_error`), counted, with the last one's
//! status and message; resolved by hand, opened again by a new failure.

use beamd_events::vocabulary::{GatewayErrorResolved, GatewayErrorsRecorded};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::super::{Aggregate, Ctx, DomainError};

/// The kinds of failure recorded.
pub const ERROR_KINDS: &[&str] = &["unreachable", "timeout", "server_error"];

/// The stream id of a route's errors of one kind.
pub fn error_group_id(route: &str, kind: &str) -> String {
    let h = blake3::hash(format!("{route}|{kind}").as_bytes());
    format!("gwe_{}", &h.to_hex()[..16])
}

/// One route's failures of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroup {
    /// `gwe_…` (its stream id).
    pub id: String,
    /// The owning tenant (empty: nothing recorded yet).
    pub tenant: String,
    /// The route.
    pub route: String,
    /// The kind.
    pub kind: String,
    /// Failures so far.
    pub count: u64,
    /// The last failure's status.
    pub status: u16,
    /// The last failure.
    pub message: String,
    /// When the first was recorded.
    pub first_at: u64,
    /// When the last was recorded.
    pub last_at: u64,
    /// When it was marked resolved (none: open).
    pub resolved_at: Option<u64>,
}

/// Commands to an error group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorGroupCommand {
    /// Count failures.
    Record(GatewayErrorsRecorded),
    /// Mark it resolved.
    Resolve,
}

impl Fold for ErrorGroup {
    const KIND: &'static str = "gateway_error";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::GatewayErrorsRecorded(e) => {
                if self.tenant.is_empty() {
                    self.id = envelope.stream.to_string();
                    self.tenant = e.tenant.clone();
                    self.route = e.route.clone();
                    self.kind = e.kind.clone();
                    self.first_at = envelope.at;
                }
                self.count += e.count;
                self.status = e.status;
                self.message = e.message.clone();
                self.last_at = envelope.at;
                self.resolved_at = None;
            }
            Event::GatewayErrorResolved(_) => self.resolved_at = Some(envelope.at),
            _ => {}
        }
    }
}

impl Aggregate for ErrorGroup {
    type Command = ErrorGroupCommand;
    const PREFIX: &'static str = "gwe";

    fn decide(&self, command: &ErrorGroupCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        match command {
            ErrorGroupCommand::Record(e) if e.count == 0 => Ok(vec![]),
            ErrorGroupCommand::Record(e) => {
                if !ERROR_KINDS.contains(&e.kind.as_str()) {
                    return Err(DomainError::InvalidRequest(format!(
                        "unknown error kind {:?}",
                        e.kind
                    )));
                }
                let mut e = e.clone();
                e.message = e.message.chars().take(300).collect();
                Ok(vec![e.into()])
            }
            ErrorGroupCommand::Resolve if self.tenant.is_empty() => {
                Err(DomainError::NotFound("error".into()))
            }
            ErrorGroupCommand::Resolve if self.resolved_at.is_some() => Ok(vec![]),
            ErrorGroupCommand::Resolve => Ok(vec![GatewayErrorResolved {}.into()]),
        }
    }
}
