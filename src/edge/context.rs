//! What every session on an edge shares: the core, the node, public port
//! settings, which session serves which tunnel (and HTTP host), and the
//! shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use beamd_transports::{Connection, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::meter::Meter;
use crate::actors::Core;

/// A byte stream to an agent, whatever the transport.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AgentStream for T {}

/// A stream to the agent, being opened.
pub type Opening<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn AgentStream>, TransportError>> + Send + 'a>>;

/// Opens streams to the agent of one connection, whatever the transport.
pub trait StreamOpener: Send + Sync {
    /// A new stream to the agent.
    fn open(&self) -> Opening<'_>;
}

impl<C: Connection> StreamOpener for C {
    fn open(&self) -> Opening<'_> {
        Box::pin(async move { Ok(Box::new(self.open_stream().await?) as Box<dyn AgentStream>) })
    }
}

/// Where requests for one HTTP host go.
#[derive(Clone)]
pub struct Route {
    /// The tunnel.
    pub tunnel: String,
    /// The agent connection serving it.
    pub opener: Arc<dyn StreamOpener>,
    /// Its counters.
    pub meter: Arc<Meter>,
}

/// Which session serves a tunnel, and what it holds for it.
struct Serving {
    session: String,
    accept_loop: Option<AbortHandle>,
    host: Option<String>,
}

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
    /// The public HTTP port, when the edge serves HTTP tunnels.
    pub http_port: Option<u16>,
    /// Whether each proxied HTTP request is recorded as a `RequestCaptured` event.
    pub capture: bool,
    /// How often traffic is reported.
    pub window: Duration,
    /// Turns true when the edge stops.
    pub shutdown: watch::Receiver<bool>,
    serving: Mutex<HashMap<String, Serving>>,
    routes: Mutex<HashMap<String, Route>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Entries are inserted and removed whole; a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EdgeContext {
    /// A context with no sessions yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: Arc<Core>,
        node: String,
        public_host: IpAddr,
        advertise: String,
        tcp_ports: (u16, u16),
        http_port: Option<u16>,
        capture: bool,
        window: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            core,
            node,
            public_host,
            advertise,
            tcp_ports,
            http_port,
            capture,
            window,
            shutdown,
            serving: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `session` serves `tunnel` (with its TCP accept loop, or its
    /// HTTP route), stopping what the session before it held: a reconnect
    /// takes over at once.
    pub fn take_over(
        &self,
        tunnel: &str,
        session: &str,
        accept_loop: Option<AbortHandle>,
        route: Option<(String, Route)>,
    ) {
        let host = route.as_ref().map(|(h, _)| h.clone());
        if let Some((host, route)) = route {
            lock(&self.routes).insert(host, route);
        }
        let entry = Serving {
            session: session.to_string(),
            accept_loop,
            host,
        };
        if let Some(old) = lock(&self.serving).insert(tunnel.to_string(), entry) {
            if let Some(a) = old.accept_loop {
                a.abort();
            }
        }
    }

    /// Stops the accept loop serving `tunnel` (if any) so its port can be bound again.
    pub fn release_port(&self, tunnel: &str) {
        if let Some(Serving {
            accept_loop: Some(a),
            ..
        }) = lock(&self.serving).get(tunnel)
        {
            a.abort();
        }
    }

    /// Forgets `tunnel` if `session` still serves it; returns whether it did.
    pub fn leave(&self, tunnel: &str, session: &str) -> bool {
        let mut serving = lock(&self.serving);
        match serving.get(tunnel) {
            Some(s) if s.session == session => {
                if let Some(entry) = serving.remove(tunnel) {
                    if let Some(a) = entry.accept_loop {
                        a.abort();
                    }
                    if let Some(h) = entry.host {
                        lock(&self.routes).remove(&h);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Whether no session serves any tunnel.
    pub fn idle(&self) -> bool {
        lock(&self.serving).is_empty()
    }

    /// Where requests for `host` go, if a session serves it.
    pub fn route(&self, host: &str) -> Option<Route> {
        lock(&self.routes).get(host).cloned()
    }
}
