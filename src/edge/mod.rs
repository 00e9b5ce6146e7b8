//! The data plane: what an edge node does with bytes. Agent sessions
//! (`sessions/`: listeners, hello, authentication, the tunnels a session
//! opens), public TCP ports (`public_port.rs`), public UDP ports
//! (`public_udp.rs`, with `udp_flows.rs` for flows carried as QUIC
//! datagrams), public HTTP with the API
//! gateway on its path (`http/`), custom domains (`domains.rs`), and what
//! they share: the context of every session and the data plane's settings
//! (`context.rs`), per-tunnel meters (`meter.rs`), per-tenant connection
//! caps (`conn_cap.rs`), the error frames sent to agents (`error_frame.rs`)
//! and the tally of the gateway's upstream failures (`error_tally.rs`).
//! The process around it (log, core, API, keepers) is wired by `node/`.

mod conn_cap;
mod context;
mod domains;
mod error_frame;
mod error_tally;
pub mod http;
mod meter;
pub mod oidc;
mod public_port;
mod public_udp;
pub mod sessions;
mod udp_flows;

pub use conn_cap::{TenantConnections, TenantSlot};
pub use context::{
    EdgeContext, EdgeSettings, H2Limits, DEFAULT_TENANT_CONNECTIONS, MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST, MAX_PENDING_RESETS,
};
pub use domains::recheck as recheck_domains;
pub use http::gateway::{probe_services, record_errors as record_gateway_errors};
pub use http::{serve as accept_public_http, serve_connection as serve_public_http, PublicTls};
pub use sessions::{
    follow_takeovers, run as run_session, EdgeSupervisor, EdgeSupervisorMsg, ListenerActor,
    ListenerMsg, ListenerSpec,
};
