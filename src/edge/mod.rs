//! `beamd edge`: an edge node. It recovers the log, starts the core, serves
//! agents over QUIC, WebSocket and/or TCP, forwards each public TCP
//! connection as one stream to its agent, and meters the bytes.

mod access;
mod admin;
mod auth;
mod busy;
mod capture;
mod conn_cap;
mod context;
mod disk;
mod dns;
mod domains;
mod egress;
mod error_tally;
mod forwarding;
mod gateway;
mod h2;
mod health;
mod http_ingress;
mod listener;
mod log_guard;
mod meter;
mod node;
mod node_settings;
mod open;
mod public_port;
mod rate_limit;
mod refusal;
pub mod replay;
mod session;
mod supervisor;
mod sweep;
mod takeover;
mod tokens_file;
mod upstream_tunnel;
mod upstream_url;

pub use access::{Access, Denied};
pub use busy::refuse_busy;
pub use conn_cap::{TenantConnections, TenantSlot};
pub use context::{EdgeContext, EdgeSettings, DEFAULT_TENANT_CONNECTIONS};
pub use disk::DiskGuard;
pub use dns::DnsVerifier;
pub use egress::{Egress, EgressError};
pub use h2::{H2Limits, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST, MAX_PENDING_RESETS};
pub use http_ingress::serve_connection as serve_public_http;
pub use node::run;
pub use node_settings::{CertFiles, NodeSettings};
pub use rate_limit::RateLimiter;
pub use session::run as run_session;
pub use supervisor::{EdgeSupervisor, EdgeSupervisorMsg, ListenerActor, ListenerMsg, ListenerSpec};
pub use sweep::take_offline_after_restart;
