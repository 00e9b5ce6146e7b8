//! The event vocabulary: every state change beamd records, one file per noun.
//!
//! Events are past tense and never change meaning; a new fact gets a new
//! variant. Fields added later must carry `#[serde(default)]` so that events
//! written by older versions keep decoding.

mod account;
mod domain;
mod gateway;
mod key;
mod node;
mod tenant;
mod tunnel;

pub use account::{
    AccountRegistered, PasswordChanged, PasswordResetRequested, SessionEnded, SessionsEnded,
};
pub use domain::{
    DomainAdded, DomainClaimExpired, DomainRemoved, DomainVerificationFailed, DomainVerified,
};
pub use gateway::{
    ConsumerCreated, ConsumerRevoked, GatewayErrorResolved, GatewayErrorsRecorded, RouteConfig,
    RouteCreated, RouteDeleted, RouteRetired, RouteUpdated, ServiceConfig, ServiceCreated,
    ServiceDeleted, ServiceHealthChanged, ServiceUpdated,
};
pub use key::{KeyCountersReset, KeyIssued, KeyKind, KeyLimitSet, KeyRevoked};
pub use node::{NodeHeartbeat, NodeJoined, NodeLeft};
pub use tenant::{Plan, TenantCreated, TenantPlanChanged, TenantRenamed};
pub use tunnel::{
    BodySeen, InspectMode, RequestCaptured, RequestsCaptured, TrafficRecorded, TransportKind,
    TunnelInspectSet, TunnelMemberJoined, TunnelMemberLeft, TunnelOpened, TunnelProtocol,
    TunnelReleased, TunnelResumed, TunnelWentOffline,
};

use serde::{Deserialize, Serialize};

/// Declares the `Event` enum and its `kind()` names from one list, so a
/// variant can never be added without a name.
macro_rules! events {
    ($($variant:ident),+ $(,)?) => {
        /// Every event beamd stores. The stream it belongs to is on the envelope.
        // The largest variant is the one-request `RequestCaptured` (about
        // 360 bytes), which only events written before captures were
        // batched carry; requests are recorded on the heap, as rows of
        // `RequestsCaptured`. Boxing it would change every constructor of
        // it for events this build no longer writes.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Event {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant($variant),
            )+
        }

        impl Event {
            /// The event's type name, as shown by `beamd replay`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => stringify!($variant),)+
                }
            }

            /// The position of the event's type in `KINDS`.
            pub fn ordinal(&self) -> usize {
                let mut n = 0usize;
                $(
                    if matches!(self, Event::$variant(_)) {
                        return n;
                    }
                    n += 1;
                )+
                n
            }

            /// Every event type name, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($variant)),+];
        }

        $(
            impl From<$variant> for Event {
                fn from(event: $variant) -> Self {
                    Event::$variant(event)
                }
            }
        )+
    };
}

events!(
    TenantCreated,
    TenantPlanChanged,
    TenantRenamed,
    KeyIssued,
    KeyLimitSet,
    KeyCountersReset,
    KeyRevoked,
    TunnelOpened,
    TunnelWentOffline,
    TunnelResumed,
    TunnelReleased,
    TrafficRecorded,
    RequestCaptured,
    DomainAdded,
    DomainVerified,
    DomainVerificationFailed,
    DomainRemoved,
    NodeJoined,
    NodeHeartbeat,
    NodeLeft,
    ServiceCreated,
    ServiceUpdated,
    ServiceDeleted,
    RouteCreated,
    RouteUpdated,
    RouteDeleted,
    ConsumerCreated,
    ConsumerRevoked,
    ServiceHealthChanged,
    GatewayErrorsRecorded,
    GatewayErrorResolved,
    AccountRegistered,
    PasswordResetRequested,
    PasswordChanged,
    TunnelInspectSet,
    SessionsEnded,
    SessionEnded,
    DomainClaimExpired,
    RouteRetired,
    RequestsCaptured,
    TunnelMemberJoined,
    TunnelMemberLeft,
);
