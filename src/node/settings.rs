//! What one edge node is told to be: its data dir and log, where it listens,
//! how it serves the public, its limits and timings. The command line (and
//! later a config file) builds it; the node never sees a flag.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use beamd_events::vocabulary::{Plan, TransportKind};
use beamd_events::Durability;

use crate::data_dir::DEFAULT_DATA_DIR;
use crate::edge::{H2Limits, DEFAULT_TENANT_CONNECTIONS};
use crate::inspector::InspectSettings;
use crate::tlog::TlogSettings;

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The PKCS#8 private key.
    pub key: PathBuf,
}

/// The admin token, whose `Debug` is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(MASKED)")
    }
}

/// Everything an edge node runs with. `Default` holds every default, the
/// command line's included (a test holds the two together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The agent listeners: a transport each, and where it listens.
    pub agent_listeners: Vec<(TransportKind, SocketAddr)>,
    /// Serve TCP and WebSocket agents over TLS as well (QUIC always is).
    pub agent_tls: bool,
    /// The agent listeners' certificate (none: a self-signed one in the data dir).
    pub agent_cert: Option<CertFiles>,
    /// The address public TCP ports are bound on.
    pub public_host: IpAddr,
    /// The host name shown in public addresses (none: the public host, or
    /// localhost when it is unspecified).
    pub advertise: Option<String>,
    /// The inclusive range public TCP ports are allocated from.
    pub tcp_ports: (u16, u16),
    /// Public UDP ports are allocated from this range.
    pub udp_ports: (u16, u16),
    /// Where public HTTP for HTTP tunnels is served (none: no public HTTP).
    pub http_listen: Option<SocketAddr>,
    /// Serve HTTPS instead of HTTP on `http_listen` with this certificate.
    pub https_cert: Option<CertFiles>,
    /// Serve HTTPS on `http_listen` with certificates from this ACME CA.
    pub acme: Option<crate::acme::AcmeSettings>,
    /// The key sign-in cookies are sealed with (none: the data dir's own).
    pub sign_in_key_file: Option<PathBuf>,
    /// Where the REST API (and /metrics) is served (none: no API).
    pub api_listen: Option<SocketAddr>,
    /// Whether sign-ups are open.
    pub signup: bool,
    /// The plan a sign-up's tenant gets.
    pub signup_plan: Plan,
    /// The SMTP relay password-reset mail goes through (none: mail is off).
    pub smtp_relay: Option<SocketAddr>,
    /// The sender of password-reset mail.
    pub mail_from: String,
    /// The public base URL of the control plane, for links in mail (none:
    /// http://<api listen address>).
    pub public_url: Option<String>,
    /// Whether requests are recorded as `RequestCaptured` events at all.
    pub capture: bool,
    /// Free bytes kept on the data dir's disk (0: no check).
    pub min_free_disk_bytes: u64,
    /// Public connections one tenant's tunnels may hold open at once.
    pub max_tenant_connections: u64,
    /// File descriptors kept free for work in flight (0: no check).
    pub fd_reserve: u64,
    /// How long the service behind an HTTP tunnel has to start answering.
    pub upstream_timeout: Duration,
    /// How long a public HTTP client has to send its headers (none: no limit).
    pub header_timeout: Option<Duration>,
    /// The DNS server asked for custom-domain TXT records (none: the system's).
    pub dns_resolver: Option<SocketAddr>,
    /// Networks the edge may connect to on a tenant's behalf besides public ones.
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Networks whose public HTTP clients may set forwarding headers.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often custom domains still waiting for their TXT record are checked.
    pub domain_recheck: Duration,
    /// How long a custom domain may wait for its TXT record before its claim lapses.
    pub domain_claim_ttl: Duration,
    /// How often gateway services with a health-check path are probed.
    pub health_interval: Duration,
    /// Agent tokens imported into the default tenant at start.
    pub tokens_file: Option<PathBuf>,
    /// The admin token of the default tenant, `tok_<id>.<secret>` (else one
    /// is made and shown once on first start).
    pub admin_token: Option<AdminToken>,
    /// How long an offline tunnel keeps its port for its agent.
    pub grace: Duration,
    /// The base host of the default tenant's HTTP tunnels.
    pub tunnel_base: String,
    /// When appends are flushed.
    pub durability: Durability,
    /// A NATS JetStream log (`nats://HOST:PORT[,…]`) instead of the data dir's sled.
    pub log: Option<String>,
    /// How often the node records a heartbeat.
    pub heartbeat: Duration,
    /// Snapshot after this many new events (0: only on shutdown).
    pub snapshot_every: u64,
    /// How long an idle tenant, key or tunnel actor lives.
    pub actor_idle: Duration,
    /// The window traffic is recorded in, one event per tunnel and window.
    pub traffic_window: Duration,
    /// Recent captured requests kept in memory per tenant.
    pub inspector_recent: usize,
    /// The transparency log.
    pub tlog: TlogSettings,
    /// Full capture.
    pub inspect: InspectSettings,
    /// The public ingress's HTTP/2 limits.
    pub h2: H2Limits,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            data_dir: DEFAULT_DATA_DIR.into(),
            agent_listeners: vec![(
                TransportKind::Quic,
                crate::protocol::default_agent_listen(TransportKind::Quic),
            )],
            agent_tls: false,
            agent_cert: None,
            public_host: IpAddr::from([0, 0, 0, 0]),
            advertise: None,
            tcp_ports: (20_000, 20_999),
            udp_ports: (20_000, 20_999),
            http_listen: None,
            https_cert: None,
            acme: None,
            sign_in_key_file: None,
            api_listen: Some(SocketAddr::from(([127, 0, 0, 1], 4040))),
            signup: true,
            signup_plan: crate::domain::tenant::parse_plan("")
                .expect("the default sign-up plan parses"),
            smtp_relay: None,
            mail_from: "beamd <noreply@localhost>".into(),
            public_url: None,
            capture: true,
            min_free_disk_bytes: 64 << 20,
            max_tenant_connections: DEFAULT_TENANT_CONNECTIONS,
            fd_reserve: beamd_transports::DEFAULT_FD_RESERVE,
            upstream_timeout: Duration::from_secs(30),
            header_timeout: Some(Duration::from_secs(10)),
            dns_resolver: None,
            egress_allow: Vec::new(),
            trusted_proxies: Vec::new(),
            domain_recheck: Duration::from_secs(30),
            domain_claim_ttl: Duration::from_secs(72 * 3600),
            health_interval: Duration::from_secs(10),
            tokens_file: None,
            admin_token: None,
            grace: Duration::from_secs(60),
            tunnel_base: "localhost".into(),
            durability: Durability::Always,
            log: None,
            heartbeat: Duration::from_secs(30),
            snapshot_every: 10_000,
            actor_idle: Duration::from_secs(300),
            traffic_window: Duration::from_millis(1_000),
            inspector_recent: crate::projections::DEFAULT_RECENT,
            tlog: TlogSettings::default(),
            inspect: InspectSettings::default(),
            h2: H2Limits::default(),
        }
    }
}
