//! What every session on an edge shares: the core, the node, how the public
//! is served, which session serves which tunnel (and HTTP hosts), and the
//! shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use beamd_events::vocabulary::{InspectMode, TransportKind};
use beamd_transports::{Connection, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::conn_cap::TenantConnections;
use super::error_tally::ErrorTally;
use super::meter::Meter;
use super::oidc::{CookieSeal, Provider};
use super::udp_flows::DatagramFlows;
use crate::actors::Core;
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::Access;
use crate::domain::{DomainName, PublicAddresses};
use crate::domain::{JoinAs, Tunnel, TunnelCommand};
use crate::egress::Egress;
use crate::inspector::FullCaptureSettings;
use crate::live::Live;
use crate::protocol::{write_frame, StreamHeader, TunnelRequest};
use crate::pump;
use crate::rate_limit::RateLimiter;

/// A byte stream to an agent, whatever the transport.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AgentStream for T {}

/// A stream to the agent, being opened.
pub type Opening<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn AgentStream>, TransportError>> + Send + 'a>>;

/// A public TCP connection being joined to a stream to the agent: `Err`
/// gives the socket back, untouched, when no stream could be opened.
pub type Joining<'a> = Pin<Box<dyn Future<Output = Result<(), TcpStream>> + Send + 'a>>;

/// Opens streams to the agent of one connection, whatever the transport.
pub trait StreamOpener: Send + Sync {
    /// A new stream to the agent.
    fn open(&self) -> Opening<'_>;

    /// Forwards a public TCP connection over a new stream, `header` first,
    /// until both directions end, counted into `meter`. The stream keeps its
    /// transport's type, so that a plain data channel is spliced.
    fn join_socket<'a>(
        &'a self,
        socket: TcpStream,
        header: &'a StreamHeader,
        meter: &'a Meter,
    ) -> Joining<'a>;
}

impl<C: Connection> StreamOpener for C {
    fn open(&self) -> Opening<'_> {
        Box::pin(async move { Ok(Box::new(self.open_stream().await?) as Box<dyn AgentStream>) })
    }

    fn join_socket<'a>(
        &'a self,
        socket: TcpStream,
        header: &'a StreamHeader,
        meter: &'a Meter,
    ) -> Joining<'a> {
        Box::pin(async move {
            let Ok(mut stream) = self.open_stream().await else {
                return Err(socket);
            };
            if write_frame(&mut stream, header).await.is_err() {
                return Err(socket);
            }
            meter.connections.fetch_add(1, Ordering::Relaxed);
            meter.active.fetch_add(1, Ordering::Relaxed);
            pump::join_socket(
                socket,
                stream,
                Some(&meter.bytes_in),
                Some(&meter.bytes_out),
            )
            .await;
            meter.active.fetch_sub(1, Ordering::Relaxed);
            Ok(())
        })
    }
}

/// One agent connection serving a tunnel: where its public connections and
/// requests go. A tunnel that is a pool has one per member; a request for
/// one of its hosts is given the member chosen for it.
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
    /// The OpenID provider people sign in with first, if the tunnel demands it.
    pub sign_in: Option<Arc<Provider>>,
    /// Whether the service behind it speaks h2c (else HTTP/1.1).
    pub h2c: bool,
    /// The pool member it is (`None`: the tunnel is not a pool).
    pub member: Option<String>,
    /// Streams open to it now, and whether it still serves.
    pub load: Arc<Load>,
}

/// What a pool's member is chosen by: the streams open to it now. Cleared
/// of `serving` when the member leaves, so that nothing kept for it (a
/// public connection's kept-alive upstream) is used again.
#[derive(Debug)]
pub struct Load {
    open: AtomicU64,
    serving: AtomicBool,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            open: AtomicU64::new(0),
            serving: AtomicBool::new(true),
        }
    }
}

impl Load {
    /// Counts one stream open to the member until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> LoadGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        LoadGuard(self.clone())
    }

    /// Streams open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the member still serves its tunnel here.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }
}

/// One stream counted in a member's load.
pub struct LoadGuard(Arc<Load>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a session holds for a tunnel it serves, besides its route.
pub enum Serve {
    /// A TCP or UDP tunnel's loop on its public port; `None` for a pool
    /// member joining a port another member of this edge serves already.
    Port(Option<AbortHandle>),
    /// An HTTP tunnel's hosts, and custom domains waiting for verification.
    Http {
        /// Hosts routed now.
        hosts: Vec<String>,
        /// Domains asked for but not verified yet.
        waiting: Vec<DomainName>,
    },
}

/// Which sessions serve a tunnel on this edge (one, or a pool's members
/// connected here), and what the tunnel holds.
struct Serving {
    pool: bool,
    /// (session, its route), in the order they came.
    members: Vec<(String, Route)>,
    /// Where the round robin among equally loaded members goes on.
    next: usize,
    /// The public port's loop.
    port: Option<AbortHandle>,
    /// Its HTTP hosts (custom domains once verified included).
    hosts: Vec<String>,
    /// Its custom domains waiting for verification.
    waiting: Vec<DomainName>,
}

impl Serving {
    /// The member with the fewest open streams, ties taken in turn, leaving
    /// out those in `except`.
    fn pick(&mut self, except: &[Arc<Load>]) -> Option<Route> {
        let n = self.members.len();
        let mut best: Option<(u64, usize)> = None;
        for i in 0..n {
            let at = (self.next + i) % n;
            let load = &self.members[at].1.load;
            if except.iter().any(|l| Arc::ptr_eq(l, load)) {
                continue;
            }
            if best.is_none_or(|(open, _)| load.open() < open) {
                best = Some((load.open(), at));
            }
        }
        let (_, at) = best?;
        self.next = (at + 1) % n;
        Some(self.members[at].1.clone())
    }

    /// Stops what it holds on this edge: its port, its members' routes.
    fn stop(&self) {
        if let Some(a) = &self.port {
            a.abort();
        }
        for (_, r) in &self.members {
            r.load.serving.store(false, Ordering::Relaxed);
        }
    }
}

/// Which sessions serve which tunnels here, and which tunnel each HTTP host is.
#[derive(Default)]
struct Served {
    tunnels: HashMap<String, Serving>,
    /// Host → (tunnel, whether it is a custom domain).
    hosts: HashMap<String, (String, bool)>,
}

impl Served {
    fn remove(&mut self, tunnel: &str) -> Option<Serving> {
        let removed = self.tunnels.remove(tunnel)?;
        for h in &removed.hosts {
            if self.hosts.get(h).is_some_and(|(t, _)| t == tunnel) {
                self.hosts.remove(h);
            }
        }
        removed.stop();
        Some(removed)
    }
}

/// An agent connection as the tunnels it opens know it.
pub struct SessionInfo {
    /// The edge's id of it (`ses_…`): a pool member's id.
    pub id: String,
    /// Its transport.
    pub transport: TransportKind,
    /// The agent's address.
    pub peer: SocketAddr,
    /// Its UDP flows carried as QUIC datagrams, when its connection is QUIC
    /// and the agent takes them.
    pub datagrams: Option<Arc<DatagramFlows>>,
}

impl SessionInfo {
    /// The pool `request` joins, as the log names the member: this
    /// session, from the agent's address, serving with `access`. `None`:
    /// the request takes its tunnel over.
    pub fn joining(&self, request: &TunnelRequest, access: &Access) -> Option<JoinAs> {
        request.pool.then(|| JoinAs {
            member: self.id.clone(),
            peer: self.peer.to_string(),
            rules: access.digest(),
        })
    }
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
    /// Seals the sign-in cookies of tunnels behind OpenID Connect.
    pub cookies: Arc<CookieSeal>,
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
            cookies: Arc::new(CookieSeal::random()),
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
    served: Mutex<Served>,
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
            served: Mutex::new(Served::default()),
        }
    }

    /// Records that `session` serves `tunnel`, stopping what the session
    /// before it held: a reconnect takes over at once.
    pub fn take_over(&self, tunnel: &str, session: &str, route: Route, serve: Serve) {
        let mut served = lock(&self.served);
        served.remove(tunnel);
        let (port, hosts, waiting) = match serve {
            Serve::Port(port) => (port, Vec::new(), Vec::new()),
            Serve::Http { hosts, waiting } => (None, hosts, waiting),
        };
        for h in &hosts {
            served.hosts.insert(h.clone(), (tunnel.to_string(), false));
        }
        let serving = Serving {
            pool: false,
            members: vec![(session.to_string(), route)],
            next: 0,
            port,
            hosts,
            waiting,
        };
        served.tunnels.insert(tunnel.to_string(), serving);
    }

    /// Records that `session` serves `tunnel` as a member of its pool, with
    /// the members already here: new public connections and requests are
    /// spread over them. A port loop or hosts it brings are kept only when
    /// the tunnel has none here yet.
    pub fn join(&self, tunnel: &str, session: &str, route: Route, serve: Serve) {
        let mut served = lock(&self.served);
        let served = &mut *served;
        let existing = served.tunnels.get(tunnel).is_some_and(|s| s.pool);
        if !existing {
            served.remove(tunnel);
            served.tunnels.insert(
                tunnel.to_string(),
                Serving {
                    pool: true,
                    members: Vec::new(),
                    next: 0,
                    port: None,
                    hosts: Vec::new(),
                    waiting: Vec::new(),
                },
            );
        }
        let Some(serving) = served.tunnels.get_mut(tunnel) else {
            return;
        };
        serving.members.retain(|(s, _)| s != session);
        serving.members.push((session.to_string(), route));
        match serve {
            Serve::Port(Some(port)) if serving.port.is_some() => port.abort(),
            Serve::Port(port) => serving.port = serving.port.take().or(port),
            Serve::Http { hosts, waiting } => {
                for h in hosts {
                    if !serving.hosts.contains(&h) {
                        served.hosts.insert(h.clone(), (tunnel.to_string(), false));
                        serving.hosts.push(h);
                    }
                }
                for d in waiting {
                    if !serving.waiting.iter().any(|w| w.id == d.id) {
                        serving.waiting.push(d);
                    }
                }
            }
        }
    }

    /// Whether a loop on this edge serves `tunnel`'s public port (a pool
    /// member joining it binds none).
    pub fn port_served(&self, tunnel: &str) -> bool {
        lock(&self.served)
            .tunnels
            .get(tunnel)
            .is_some_and(|s| s.port.as_ref().is_some_and(|p| !p.is_finished()))
    }

    /// Stops the loop serving `tunnel`'s public port (if any) so the port can
    /// be bound again.
    pub fn release_port(&self, tunnel: &str) {
        if let Some(Some(a)) = lock(&self.served).tunnels.get(tunnel).map(|s| &s.port) {
            a.abort();
        }
    }

    /// Forgets that `session` serves `tunnel`; a pool's other members here
    /// go on serving it. Returns whether the session served it.
    pub fn leave(&self, tunnel: &str, session: &str) -> bool {
        let mut served = lock(&self.served);
        let Some(serving) = served.tunnels.get_mut(tunnel) else {
            return false;
        };
        let Some(at) = serving.members.iter().position(|(s, _)| s == session) else {
            return false;
        };
        let (_, route) = serving.members.remove(at);
        route.load.serving.store(false, Ordering::Relaxed);
        if serving.members.is_empty() {
            served.remove(tunnel);
        }
        true
    }

    /// Stops serving `tunnel` here whichever session serves it: another node
    /// took it over. The session notices at its next traffic window and ends.
    pub fn evict(&self, tunnel: &str) -> bool {
        lock(&self.served).remove(tunnel).is_some()
    }

    /// Takes back what the log says of a tunnel opened for `session` that it
    /// then could not serve: a pool member leaves, a lone tunnel goes offline.
    pub async fn abandon(&self, tunnel: &Tunnel, session: &str, reason: &str) {
        let cmd = match tunnel.pool {
            true => TunnelCommand::Leave {
                member: session.to_string(),
                reason: reason.into(),
            },
            false => TunnelCommand::GoOffline {
                reason: reason.into(),
                node: Some(self.node.clone()),
            },
        };
        let _ = self.core.tunnel_command(&tunnel.id, cmd).await;
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
        lock(&self.served).tunnels.contains_key(tunnel)
    }

    /// Whether `session` still serves `tunnel` (no reconnect took it over).
    pub fn serves_as(&self, tunnel: &str, session: &str) -> bool {
        lock(&self.served)
            .tunnels
            .get(tunnel)
            .is_some_and(|s| s.members.iter().any(|(m, _)| m == session))
    }

    /// Whether no session serves any tunnel.
    pub fn idle(&self) -> bool {
        lock(&self.served).tunnels.is_empty()
    }

    /// Where a request for `host` goes, if a session serves it: for a pool,
    /// the member with the fewest open streams.
    pub fn route(&self, host: &str) -> Option<Route> {
        let mut served = lock(&self.served);
        let (tunnel, custom) = served.hosts.get(host).cloned()?;
        let mut route = served.tunnels.get_mut(&tunnel)?.pick(&[])?;
        route.custom = custom;
        Some(route)
    }

    /// The tenant of the tunnel a session here serves `host` for, if any
    /// (choosing no member); a custom domain only while it is still
    /// verified for that tenant.
    pub fn host_tenant(&self, host: &str) -> Option<String> {
        let (tenant, custom) = {
            let served = lock(&self.served);
            let (tunnel, custom) = served.hosts.get(host)?;
            let serving = served.tunnels.get(tunnel)?;
            (serving.members.first()?.1.tenant.clone(), *custom)
        };
        if custom && !self.core.projections().hot().reaches(host, &tenant) {
            return None;
        }
        Some(tenant)
    }

    /// A member of `tunnel` other than those in `except` (whose streams
    /// failed), chosen as `route` chooses; or the one serving it.
    pub fn pick(&self, tunnel: &str, except: &[Arc<Load>]) -> Option<Route> {
        lock(&self.served).tunnels.get_mut(tunnel)?.pick(except)
    }

    /// The route of an HTTP tunnel a session on this edge serves.
    pub fn tunnel_route(&self, tunnel: &str) -> Option<Route> {
        let mut served = lock(&self.served);
        let serving = served.tunnels.get_mut(tunnel)?;
        if serving.hosts.is_empty() && serving.waiting.is_empty() {
            return None;
        }
        serving.pick(&[])
    }

    /// Stops routing `host` (a custom domain that was removed).
    pub fn unroute(&self, host: &str) {
        let mut served = lock(&self.served);
        if let Some((tunnel, _)) = served.hosts.remove(host) {
            if let Some(s) = served.tunnels.get_mut(&tunnel) {
                s.hosts.retain(|h| h != host);
            }
        }
    }

    /// Custom domains that served tunnels wait for, with their tunnel.
    pub fn waiting_domains(&self) -> Vec<(String, DomainName)> {
        lock(&self.served)
            .tunnels
            .iter()
            .flat_map(|(tunnel, s)| s.waiting.iter().map(|d| (tunnel.clone(), d.clone())))
            .collect()
    }

    /// Routes a custom domain that was verified to the tunnel waiting for it.
    pub fn domain_verified(&self, tunnel: &str, domain: &DomainName) {
        let mut served = lock(&self.served);
        let served = &mut *served;
        let Some(serving) = served.tunnels.get_mut(tunnel) else {
            return;
        };
        serving.waiting.retain(|d| d.id != domain.id);
        if !serving.hosts.contains(&domain.host) {
            serving.hosts.push(domain.host.clone());
        }
        (served.hosts).insert(domain.host.clone(), (tunnel.to_string(), true));
    }
}
