//! The agent: `beamd tcp` runs next to a private service, connects out to an
//! edge, and forwards the streams the edge opens to the local port.

mod tcp;

pub use tcp::{run_tcp, TcpArgs};
