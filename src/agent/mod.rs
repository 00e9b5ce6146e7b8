//! The agent: `beamd tcp` and `beamd http` run next to a private service, connects out to an
//! edge, and forwards the streams the edge opens to the local port.

mod dial;
mod health;
mod plan;
mod proxy_header;
mod run;
mod session;
mod settings;
mod trust;
mod udp;

pub use dial::AgentTransport;
pub use health::{watch_health, HealthCheck, Probe};
pub use run::{run_http, run_start, run_tcp, run_tcp_reporting, run_udp};
pub use settings::{AgentConn, HttpSettings, SignInSettings, TcpSettings, UdpSettings};
