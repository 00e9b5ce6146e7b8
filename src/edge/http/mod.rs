//! Public HTTP(S): the ingress that routes a request by its host to the
//! agent serving it (`ingress.rs`, HTTP/2 in `h2.rs`, forwarding headers in
//! `forwarding.rs`, sign-in with OpenID Connect in `sign_in.rs`), the connection
//! through the tunnel (`upstream_tunnel.rs`), the capture of each request
//! (`capture.rs`) and of the edge's own refusals (`refusal.rs`), replays of
//! captured requests (`replay.rs`), the API gateway on this path
//! (`gateway/`).

mod capture;
mod forwarding;
pub mod gateway;
mod h2;
mod ingress;
mod refusal;
mod replay;
mod sign_in;
mod upstream_tunnel;

pub use ingress::{serve, serve_connection, PublicTls};
