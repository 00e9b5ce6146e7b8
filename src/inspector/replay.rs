//! Replaying a captured request through its tunnel, as the API asks it of
//! the data plane: the request to send again, the service's answer, why
//! there is none, and the `Replayer` that the edge implements and the node
//! hands to the API (so that neither imports the other).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// The request to send again.
#[derive(Debug, Clone)]
pub struct Resend {
    /// Its method.
    pub method: String,
    /// Its path and query.
    pub path: String,
    /// Its headers; masked values are left out.
    pub headers: Vec<(String, String)>,
    /// Its whole body.
    pub body: Bytes,
    /// The id (`req_…`) of the request it replays.
    pub replay_of: String,
}

/// The service's answer to a replay.
#[derive(Debug)]
pub struct Replayed {
    /// Response status.
    pub status: u16,
    /// Response headers, as the service sent them.
    pub headers: Vec<(String, String)>,
    /// The first bytes of the response body.
    pub body: Vec<u8>,
    /// The whole body's length.
    pub len: u64,
    /// Whether `body` holds only the first bytes.
    pub truncated: bool,
    /// The replay's id (`req_…`) when it was captured.
    pub id: Option<String>,
}

/// Why a replay was not answered.
#[derive(Debug)]
pub enum ReplayError {
    /// No session on this edge serves the tunnel (offline, or another node's).
    NotHere(String),
    /// The request cannot be sent as given.
    Invalid(String),
    /// The tenant holds its cap of open connections.
    Busy(String),
    /// The tunnel or the service failed, or did not answer in time.
    Failed(String),
}

/// A replay under way.
pub type Replaying<'a> = Pin<Box<dyn Future<Output = Result<Replayed, ReplayError>> + Send + 'a>>;

/// Sends captured requests again through the tunnels this node serves.
pub trait Replayer: Send + Sync {
    /// Sends `resend` through `tunnel` to the agent's service and reads the
    /// answer (its first bytes kept, as many as full capture keeps). The
    /// replay counts into the tunnel's traffic like public traffic and is
    /// captured as a new request whose `replay_of_id` is `resend.replay_of`,
    /// recorded before this returns. A tunnel no session on this node
    /// serves is `NotHere`; nothing is retried.
    fn replay<'a>(&'a self, tunnel: &'a str, resend: Resend) -> Replaying<'a>;
}
