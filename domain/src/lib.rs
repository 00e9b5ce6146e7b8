//! The pure aggregates: tenant, key, tunnel, domain name, node, the API
//! gateway's services, routes and consumers, and the
//! directory that serializes what must be unique across them.
//!
//! Nothing here does I/O or reads a clock: `decide` gets the time and a fresh
//! id from `Ctx`, and `apply` (via `Fold`) never fails. This is what makes
//! replay and simulation exact.

mod access;
pub mod account;
pub mod calendar;
mod context;
mod creation;
mod directory;
mod domain_name;
pub mod egress;
mod error;
pub mod gateway;
mod key;
mod node;
mod public_address;
mod scope;
pub mod tenant;
mod tunnel;
pub mod validate;

pub use access::{Access, Denied, SignInRule};
pub use account::{registered, Account, AccountCommand, AttemptLimit};
pub use context::Ctx;
pub use directory::{
    AddDomain, CreateTenant, Directory, JoinAs, OpenTunnel, OpenUsage, PortRequest,
};
pub use domain_name::{
    claim_lapsed, host_reaches, DomainCommand, DomainName, DomainStatus, DEFAULT_CLAIM_TTL_MS,
};
pub use error::DomainError;
pub use key::{Key, KeyCommand, KeyStatus, MAX_LABEL};
pub use node::{Node, NodeCommand, NodeStatus};
pub use public_address::PublicAddresses;
pub use scope::{Scope, Scopes};
pub use tenant::{Tenant, TenantCommand};
pub use tunnel::{Member, Tunnel, TunnelCommand, TunnelStatus};
pub use validate::{host as check_host, request_host};

use beamd_events::Event;
use beamd_snapshots::Fold;

/// An entity whose state is the fold of its own stream and which decides
/// commands against that state.
pub trait Aggregate: Fold + Clone + PartialEq + std::fmt::Debug {
    /// What can be asked of it.
    type Command;
    /// The prefix of its stream ids (`ten`, `tok`, `tun`, `dom`, `node`).
    const PREFIX: &'static str;
    /// The events that carrying out `command` would record, or why not.
    fn decide(&self, command: &Self::Command, ctx: &Ctx) -> Result<Vec<Event>, DomainError>;
}

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
