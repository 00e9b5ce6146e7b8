//! The flags of `beamd tcp` and `beamd http`, and the agent settings they
//! make.

use std::path::PathBuf;

use beamd_events::vocabulary::InspectMode;
use clap::ValueEnum;

use std::time::Duration;

use crate::agent::{
    AgentConn, AgentTransport, HealthCheck, HttpSettings, Probe, SignInSettings, TcpSettings,
    UdpSettings,
};
use crate::protocol::{ProxyProtocol, UpstreamProtocol};

/// How an agent reaches the edge, on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentTransportArg {
    /// QUIC, falling back to WebSocket, then TCP, at each edge.
    Auto,
    /// QUIC over UDP (TLS 1.3 always).
    Quic,
    /// WebSocket over TCP.
    Ws,
    /// Plain TCP.
    Tcp,
}

impl From<AgentTransportArg> for AgentTransport {
    fn from(t: AgentTransportArg) -> Self {
        match t {
            AgentTransportArg::Auto => AgentTransport::Auto,
            AgentTransportArg::Quic => AgentTransport::Quic,
            AgentTransportArg::Ws => AgentTransport::Ws,
            AgentTransportArg::Tcp => AgentTransport::Tcp,
        }
    }
}

/// How an agent reaches and trusts the edge: shared by `beamd tcp` and `beamd http`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentConnArgs {
    /// The edge's agent address HOST:PORT, or several edges of one cluster
    /// (HOST:PORT,HOST:PORT,…: the agent moves to the next when its edge goes
    /// away), each optionally prefixed quic://, ws:// or tcp://; or a share
    /// link beamd://TOKEN@HOST:PORT[,…]?transport=…&fingerprint=….
    #[arg(long, env = "BEAMD_EDGE")]
    pub edge: String,
    /// How to reach the edge; auto tries QUIC, then WebSocket, then TCP at
    /// each edge, using the first that connects.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: AgentTransportArg,
    /// The agent token, tok_<id>.<secret> (or in the share link).
    #[arg(long, env = "BEAMD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Use TLS over ws and tcp (QUIC always does); the edge must run with --tls.
    #[arg(long)]
    pub tls: bool,
    /// The host of the local service.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_host: String,
    /// Trust the edge whose certificate has this SHA-256 fingerprint (printed by
    /// `beamd edge`). Without this, --ca or --insecure, the system's public CAs are trusted.
    #[arg(long, conflicts_with_all = ["ca", "insecure"])]
    pub fingerprint: Option<String>,
    /// Trust edges whose certificate chains to a CA in this PEM file.
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the edge at all. For local testing only.
    #[arg(long)]
    pub insecure: bool,
    /// Give up after this many failed connection attempts in a row (0 = never).
    #[arg(long, default_value_t = 0)]
    pub max_retries: u32,
}

impl From<AgentConnArgs> for AgentConn {
    fn from(a: AgentConnArgs) -> Self {
        AgentConn {
            edge: a.edge,
            transport: a.transport.into(),
            token: a.token,
            tls: a.tls,
            local_host: a.local_host,
            fingerprint: a.fingerprint,
            ca: a.ca,
            insecure: a.insecure,
            max_retries: a.max_retries,
        }
    }
}

/// Options of `beamd tcp`.
#[derive(Debug, clap::Args)]
pub struct TcpArgs {
    /// The local port to expose.
    pub local_port: u16,
    /// Ask for this public port (by default any free one, then the same one on every reconnect).
    #[arg(long)]
    pub remote_port: Option<u16>,
    /// Send the local service a PROXY protocol header (`v1` text or `v2`
    /// binary, as HAProxy defines them) with the public client's address
    /// before the connection's first byte; the service must expect it
    /// (nginx: `listen … proxy_protocol`).
    #[arg(long, value_name = "v1|v2", value_parser = parse_proxy_protocol)]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Join the pool on --remote-port instead of taking the port over:
    /// several agents (any agent tokens of one tenant) serve it together,
    /// each new public connection going to the one with the fewest open.
    #[arg(long, requires = "remote_port")]
    pub pool: bool,
    /// Leave the pool while a TCP connection to the local service cannot
    /// be opened (3 failed tries in a row), and join it again when one can.
    #[arg(long, requires = "pool")]
    pub health_check: bool,
    /// Seconds between health checks.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_interval: u64,
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConnArgs,
}

impl From<TcpArgs> for TcpSettings {
    fn from(a: TcpArgs) -> Self {
        TcpSettings {
            local_port: a.local_port,
            remote_port: a.remote_port,
            proxy_protocol: a.proxy_protocol,
            pool: a.pool,
            health: a.health_check.then(|| HealthCheck {
                probe: Probe::Connect,
                interval: Duration::from_secs(a.health_interval),
            }),
            conn: a.conn.into(),
        }
    }
}

/// Options of `beamd udp`.
#[derive(Debug, clap::Args)]
pub struct UdpArgs {
    /// The local UDP port to expose.
    pub local_port: u16,
    /// Ask for this public UDP port (by default any free one of the edge's
    /// --udp-ports, then the same one on every reconnect).
    #[arg(long)]
    pub remote_port: Option<u16>,
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConnArgs,
}

impl From<UdpArgs> for UdpSettings {
    fn from(a: UdpArgs) -> Self {
        UdpSettings {
            local_port: a.local_port,
            remote_port: a.remote_port,
            conn: a.conn.into(),
        }
    }
}

/// Options of `beamd http`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// The local HTTP port to expose.
    pub local_port: u16,
    /// The tunnel's name: it is served at NAME.<tunnel base> (default: a random name).
    #[arg(long)]
    pub name: Option<String>,
    /// Serve this custom domain too. It is added to your tenant if new; the edge
    /// routes it once the TXT record it prints is published.
    #[arg(long)]
    pub domain: Option<String>,
    /// Demand HTTP basic auth USER:PASSWORD of every public request (checked at the edge).
    #[arg(long, env = "BEAMD_BASIC_AUTH", hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// Demand sign-in with this OpenID Connect provider (its issuer URL)
    /// before any request reaches the service: the edge sends browsers to
    /// the provider and back to https://HOST/.beamd/oidc/callback (register
    /// that redirect URI with the provider), keeps a session cookie, and
    /// passes the person on in X-Beamd-User and X-Beamd-Email.
    #[arg(long, value_name = "URL", requires_all = ["oidc_client_id", "oidc_client_secret_file"], conflicts_with = "basic_auth")]
    pub oidc_issuer: Option<String>,
    /// The client id registered with the provider.
    #[arg(long, value_name = "ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// A file holding the client's secret (sent to the edge, never stored in its log).
    #[arg(long, value_name = "FILE", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Let in only this signed-in email address (repeat for several; with
    /// --oidc-allow-domain, either matches). Without either, anyone the
    /// provider signs in is let in.
    #[arg(long, value_name = "EMAIL", requires = "oidc_issuer")]
    pub oidc_allow_email: Vec<String>,
    /// Let in signed-in email addresses of this domain (repeat for several).
    #[arg(long, value_name = "DOMAIN", requires = "oidc_issuer")]
    pub oidc_allow_domain: Vec<String>,
    /// Let in only clients from this network (CIDR or address; repeat for several).
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<String>,
    /// What the edge's inspector keeps of each request: `off` (nothing),
    /// `meta` (method, path, status, sizes; the default for a new tunnel) or
    /// `full` (also headers and the first bytes of each body, credentials
    /// masked, for `beamd requests show` and replay). Without the flag a
    /// reconnect keeps the mode last set (e.g. over the API).
    #[arg(long, value_name = "off|meta|full", value_parser = parse_inspect)]
    pub inspect: Option<InspectMode>,
    /// What the local service speaks: `http1` (HTTP/1.1, the default) or
    /// `h2c` (HTTP/2 without TLS, e.g. a gRPC server). Public clients may
    /// speak either; the edge speaks this to the service through the tunnel.
    #[arg(long, value_name = "http1|h2c", default_value = "http1", value_parser = parse_upstream)]
    pub upstream: UpstreamProtocol,
    /// Join the pool of --name instead of taking the name over: several
    /// agents (any agent tokens of one tenant) serve it together, each new
    /// public connection going to the one with the fewest open.
    #[arg(long, requires = "name")]
    pub pool: bool,
    /// Leave the pool while `GET PATH` on the local service fails (3 tries
    /// in a row without a 2xx or 3xx answer within 3 s), and join it again
    /// when it passes.
    #[arg(long, value_name = "PATH", requires = "pool", value_parser = parse_check_path)]
    pub health_check: Option<String>,
    /// Seconds between health checks.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_interval: u64,
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConnArgs,
}

impl From<HttpArgs> for HttpSettings {
    fn from(a: HttpArgs) -> Self {
        HttpSettings {
            local_port: a.local_port,
            name: a.name,
            domain: a.domain,
            basic_auth: a.basic_auth,
            allow: a.allow,
            inspect: a.inspect,
            upstream: a.upstream,
            pool: a.pool,
            sign_in: a.oidc_issuer.map(|issuer| SignInSettings {
                issuer,
                client_id: a.oidc_client_id.unwrap_or_default(),
                secret_file: a.oidc_client_secret_file.unwrap_or_default(),
                allow_emails: a.oidc_allow_email,
                allow_domains: a.oidc_allow_domain,
            }),
            health: a.health_check.map(|path| HealthCheck {
                probe: Probe::Http(path),
                interval: Duration::from_secs(a.health_interval),
            }),
            conn: a.conn.into(),
        }
    }
}

fn parse_check_path(s: &str) -> std::result::Result<String, String> {
    match s.starts_with('/') && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        true => Ok(s.to_string()),
        false => Err(format!(
            "{s:?} is not a path: it starts with / and has no spaces"
        )),
    }
}

fn parse_upstream(s: &str) -> std::result::Result<UpstreamProtocol, String> {
    match s {
        "http1" => Ok(UpstreamProtocol::Http1),
        "h2c" => Ok(UpstreamProtocol::H2c),
        _ => Err(format!("{s:?} is not one of http1, h2c")),
    }
}

fn parse_proxy_protocol(s: &str) -> std::result::Result<ProxyProtocol, String> {
    ProxyProtocol::parse(s).ok_or_else(|| format!("{s:?} is not one of v1, v2"))
}

fn parse_inspect(s: &str) -> std::result::Result<InspectMode, String> {
    InspectMode::parse(s).ok_or_else(|| format!("{s:?} is not one of off, meta, full"))
}
