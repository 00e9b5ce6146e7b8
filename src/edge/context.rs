//! What every session on an edge shares: the core, the node, how the public
//! is served, which session serves which tunnel (and HTTP hosts), and the
//! shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use beamd_events::vocabulary::InspectMode;
use beamd_transports::{Connection, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::conn_cap::TenantConnections;
use super::error_tally::ErrorTally;
use super::meter::Meter;
use crate::actors::Core;
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::Access;
use crate::domain::{DomainName, PublicAddresses};
use crate::egress::Egress;
use crate::inspector::FullCaptureSettings;
use crate::live::Live;
use crate::rate_limit::RateLimiter;

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
    /// Its tenant (a custom domain must stay verified for it).
    pub tenant: String,
    /// Whether the host is a custom domain rather than NAME.<tunnel base>.
    pub custom: bool,
    /// The agent connection serving it.
    pub opener: Arc<dyn StreamOpener>,
    /// Its counters.
    pub meter: Arc<Meter>,
    /// Who may use it.
    pub access: Arc<Access>,
    /// Whether the service behind it speaks h2c (else HTTP/1.1).
    pub h2c: bool,
}

/// What a session holds for a tunnel it serves.
pub enum Serve {
    /// A TCP tunnel's accept loop on its public port.
    Port(AbortHandle),
    /// An HTTP tunnel's hosts, and custom domains waiting for verification.
    Http {
        /// Hosts routed now.
        hosts: Vec<String>,
        /// The route for each of them.
        route: Route,
        /// Domains asked for but not verified yet.
        waiting: Vec<DomainName>,
    },
}

/// Which session serves a tunnel, and what it holds for it.
struct Serving {
    session: String,
    serve: Serve,
}

/// Public connections one tenant's tunnels may hold open at once.
pub const DEFAULT_TENANT_CONNECTIONS: u64 = 10_000;

/// Streams one HTTP/2 client connection may have open at once, by default.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// The largest header list an HTTP/2 client may send, in bytes, by default.
pub const MAX_HEADER_LIST: u32 = 32 << 10;
/// Streams a client may reset before the server has accepted them, at once,
/// by default (the guard against a rapid-reset flood).
pub const MAX_PENDING_RESETS: usize = 20;
/// The HTTP/2 limits of the public ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams one HTTP/2 client connection may have open at once (further
    /// ones are refused with REFUSED_STREAM until some end).
    pub max_streams: u32,
    /// The largest header list (bytes, decoded) an HTTP/2 client may send.
    pub max_header_list: u32,
    /// Streams an HTTP/2 client may reset before the edge took them up, at
    /// once (the rapid-reset guard).
    pub max_pending_resets: usize,
}

impl Default for H2Limits {
    fn default() -> Self {
        Self {
            max_streams: MAX_CONCURRENT_STREAMS,
            max_header_list: MAX_HEADER_LIST,
            max_pending_resets: MAX_PENDING_RESETS,
        }
    }
}

/// How the edge serves the public.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Where public TCP ports are bound.
    pub public_host: IpAddr,
    /// The host name shown in public addresses.
    pub advertise: String,
    /// The range public TCP ports are allocated from.
    pub tcp_ports: (u16, u16),
    /// The range public UDP ports are allocated from.
    pub udp_ports: (u16, u16),
    /// The public HTTP port, when the edge serves HTTP tunnels.
    pub http_port: Option<u16>,
    /// Whether the public HTTP port speaks TLS.
    pub https: bool,
    /// Whether each proxied HTTP request is recorded as a `RequestCaptured` event.
    pub capture: bool,
    /// How long the agent's service has to start answering an HTTP request.
    pub upstream_timeout: Live<Duration>,
    /// How long a public client has to send a request's headers (slowloris).
    pub header_timeout: Live<Option<Duration>>,
    /// The public ingress's HTTP/2 limits.
    pub h2: H2Limits,
    /// How custom domains are verified.
    pub dns: DnsVerifier,
    /// Where the edge may connect on a tenant's behalf.
    pub egress: Arc<Egress>,
    /// Public HTTP clients whose forwarding headers are kept.
    pub trusted_proxies: Live<Vec<ipnet::IpNet>>,
    /// How often domains waiting for their TXT record are checked again.
    pub domain_recheck: Duration,
    /// How often a session records its tunnels' traffic: one
    /// `TrafficRecorded` per tunnel and window (the only window).
    pub window: Duration,
    /// The data dir's free space: below its watermark, commands, new
    /// sessions and captures are refused.
    pub disk: Arc<DiskGuard>,
    /// Public connections open per tenant, and their cap.
    pub connections: Arc<TenantConnections>,
    /// Full capture (headers and body prefixes); `None`: metadata only.
    pub full_capture: Option<FullCaptureSettings>,
}

impl EdgeSettings {
    /// Settings for an edge advertised as `advertise`, binding public ports
    /// on `public_host`; no HTTP.
    pub fn new(public_host: IpAddr, advertise: impl Into<String>) -> Self {
        Self {
            public_host,
            advertise: advertise.into(),
            tcp_ports: (20_000, 29_999),
            udp_ports: (30_000, 30_999),
            http_port: None,
            https: false,
            capture: true,
            upstream_timeout: Live::new(Duration::from_secs(30)),
            header_timeout: Live::new(Some(Duration::from_secs(10))),
            h2: Default::default(),
            dns: DnsVerifier::default(),
            egress: Arc::new(Egress::new(Vec::new(), DnsVerifier::default())),
            trusted_proxies: Live::new(Vec::new()),
            domain_recheck: Duration::from_secs(30),
            window: Duration::from_millis(200),
            disk: DiskGuard::off(),
            connections: TenantConnections::new(DEFAULT_TENANT_CONNECTIONS),
            full_capture: None,
        }
    }

    /// Where the public reaches this edge's tunnels.
    pub fn public_addresses(&self) -> PublicAddresses {
        PublicAddresses {
            advertise: self.advertise.clone(),
            http_port: self.http_port,
            https: self.https,
        }
    }

    /// The public URL of an HTTP host.
    pub fn url(&self, host: &str) -> String {
        self.public_addresses().url(host)
    }
}

/// Settings and shared state of the edge's sessions.
pub struct EdgeContext {
    /// The control-plane core.
    pub core: Arc<Core>,
    /// This node's id.
    pub node: String,
    /// How the public is served.
    pub settings: EdgeSettings,
    /// Cancelled when the edge stops. (Not a `watch`: tokio wakes a watch's
    /// receivers in a random order, which a simulated run must not depend on.)
    pub shutdown: CancellationToken,
    /// The gateway's rate limits.
    pub limiter: RateLimiter,
    /// Gateway failures not recorded yet.
    pub errors: ErrorTally,
    serving: Mutex<HashMap<String, Serving>>,
    routes: Mutex<HashMap<String, Route>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Entries are inserted and removed whole; a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EdgeContext {
    /// A context with no sessions yet.
    pub fn new(
        core: Arc<Core>,
        node: String,
        settings: EdgeSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            core,
            node,
            settings,
            shutdown,
            limiter: RateLimiter::default(),
            errors: ErrorTally::default(),
            serving: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `session` serves `tunnel`, stopping what the session
    /// before it held: a reconnect takes over at once.
    pub fn take_over(&self, tunnel: &str, session: &str, serve: Serve) {
        if let Serve::Http { hosts, route, .. } = &serve {
            let mut routes = lock(&self.routes);
            for host in hosts {
                routes.insert(host.clone(), route.clone());
            }
        }
        let entry = Serving {
            session: session.to_string(),
            serve,
        };
        if let Some(old) = lock(&self.serving).insert(tunnel.to_string(), entry) {
            if let Serve::Port(a) = old.serve {
                a.abort();
            }
        }
    }

    /// Stops the accept loop serving `tunnel` (if any) so its port can be bound again.
    pub fn release_port(&self, tunnel: &str) {
        if let Some(Serving {
            serve: Serve::Port(a),
            ..
        }) = lock(&self.serving).get(tunnel)
        {
            a.abort();
        }
    }

    /// Forgets `tunnel` if `session` still serves it; returns whether it did.
    pub fn leave(&self, tunnel: &str, session: &str) -> bool {
        let mut serving = lock(&self.serving);
        if !matches!(serving.get(tunnel), Some(s) if s.session == session) {
            return false;
        }
        let removed = serving.remove(tunnel);
        drop(serving);
        self.stop_serving(tunnel, removed);
        true
    }

    /// Stops serving `tunnel` here whichever session serves it: another node
    /// took it over. The session notices at its next traffic window and ends.
    pub fn evict(&self, tunnel: &str) -> bool {
        let removed = lock(&self.serving).remove(tunnel);
        let evicted = removed.is_some();
        self.stop_serving(tunnel, removed);
        evicted
    }

    fn stop_serving(&self, tunnel: &str, removed: Option<Serving>) {
        match removed.map(|s| s.serve) {
            Some(Serve::Port(a)) => a.abort(),
            Some(Serve::Http { hosts, .. }) => {
                let mut routes = lock(&self.routes);
                for h in hosts {
                    if routes.get(&h).is_some_and(|r| r.tunnel == tunnel) {
                        routes.remove(&h);
                    }
                }
            }
            None => {}
        }
    }

    /// What the inspector keeps of `tunnel`'s requests on this edge: its
    /// mode, or `off` when the edge captures nothing.
    pub fn inspect_mode(&self, tunnel: &str) -> InspectMode {
        if !self.settings.capture {
            return InspectMode::Off;
        }
        let hot = self.core.projections().hot();
        hot.inspect
            .get(tunnel)
            .copied()
            .unwrap_or(InspectMode::Meta)
    }

    /// Whether a session serves `tunnel` now.
    pub fn serves(&self, tunnel: &str) -> bool {
        lock(&self.serving).contains_key(tunnel)
    }

    /// Whether `session` still serves `tunnel` (no reconnect took it over).
    pub fn serves_as(&self, tunnel: &str, session: &str) -> bool {
        matches!(lock(&self.serving).get(tunnel), Some(s) if s.session == session)
    }

    /// Whether no session serves any tunnel.
    pub fn idle(&self) -> bool {
        lock(&self.serving).is_empty()
    }

    /// Where requests for `host` go, if a session serves it.
    pub fn route(&self, host: &str) -> Option<Route> {
        lock(&self.routes).get(host).cloned()
    }

    /// The route of an HTTP tunnel a session on this edge serves.
    pub fn tunnel_route(&self, tunnel: &str) -> Option<Route> {
        match &lock(&self.serving).get(tunnel)?.serve {
            Serve::Http { route, .. } => Some(route.clone()),
            Serve::Port(_) => None,
        }
    }

    /// Stops routing `host` (a custom domain that was removed).
    pub fn unroute(&self, host: &str) {
        lock(&self.routes).remove(host);
    }

    /// Custom domains that served tunnels wait for, with their tunnel.
    pub fn waiting_domains(&self) -> Vec<(String, DomainName)> {
        lock(&self.serving)
            .iter()
            .flat_map(|(tunnel, s)| match &s.serve {
                Serve::Http { waiting, .. } => waiting
                    .iter()
                    .map(|d| (tunnel.clone(), d.clone()))
                    .collect(),
                Serve::Port(_) => Vec::new(),
            })
            .collect()
    }

    /// Routes a custom domain that was verified to the tunnel waiting for it.
    pub fn domain_verified(&self, tunnel: &str, domain: &DomainName) {
        let mut serving = lock(&self.serving);
        let Some(Serve::Http {
            hosts,
            route,
            waiting,
        }) = serving.get_mut(tunnel).map(|s| &mut s.serve)
        else {
            return;
        };
        waiting.retain(|d| d.id != domain.id);
        if !hosts.contains(&domain.host) {
            hosts.push(domain.host.clone());
        }
        let route = Route {
            custom: true,
            ..route.clone()
        };
        lock(&self.routes).insert(domain.host.clone(), route);
    }
}
