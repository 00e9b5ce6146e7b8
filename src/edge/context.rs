//! What every session on an edge shares: the core, the node, public port
//! settings, which session serves which tunnel, and the shutdown signal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::actors::Core;

/// Settings and shared state of the edge's sessions.
pub struct EdgeContext {
    /// The control-plane core.
    pub core: Arc<Core>,
    /// This node's id.
    pub node: String,
    /// Where public TCP ports are bound.
    pub public_host: IpAddr,
    /// The host name shown in public addresses.
    pub advertise: String,
    /// The range public TCP ports are allocated from.
    pub tcp_ports: (u16, u16),
    /// How often traffic is reported.
    pub window: Duration,
    /// Turns true when the edge stops.
    pub shutdown: watch::Receiver<bool>,
    /// Tunnel id → (session id, its public accept loop): the session serving it now.
    pub serving: Mutex<HashMap<String, (String, AbortHandle)>>,
}

impl EdgeContext {
    /// Records that `session` serves `tunnel`, stopping the accept loop of the
    /// session that served it before (a reconnect takes over at once).
    pub fn take_over(&self, tunnel: &str, session: &str, accept_loop: AbortHandle) {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) =
            serving.insert(tunnel.to_string(), (session.to_string(), accept_loop))
        {
            old.abort();
        }
    }

    /// Stops the accept loop serving `tunnel` (if any) so its port can be bound again.
    pub fn release_port(&self, tunnel: &str) {
        let serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = serving.get(tunnel) {
            old.abort();
        }
    }

    /// Forgets `tunnel` if `session` still serves it; returns whether it did.
    pub fn leave(&self, tunnel: &str, session: &str) -> bool {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        match serving.get(tunnel) {
            Some((s, handle)) if s == session => {
                handle.abort();
                serving.remove(tunnel);
                true
            }
            _ => false,
        }
    }
}
