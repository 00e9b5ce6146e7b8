//! The CLI over the REST API, for people who live in a terminal:
//! `beamd tokens|tunnels|usage|requests|domains …`, human tables by default,
//! `--json` for the API's own answer.

mod api;
pub mod commands;
pub mod requests;
mod table;

pub use api::{ApiClient, ApiSettings};
pub use commands::{run, ClientCommand};
