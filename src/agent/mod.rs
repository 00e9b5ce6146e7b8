//! The agent: `beamd tcp` and `beamd http` run next to a private service, connects out to an
//! edge, and forwards the streams the edge opens to the local port.

mod run;

pub use run::{run_http, run_tcp, AgentConn, HttpArgs, ShareLink, TcpArgs};
