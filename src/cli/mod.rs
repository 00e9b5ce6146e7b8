//! The command line: one subcommand per job, parsed by clap.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use beamd_events::Durability;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::commands::{ApiArgs, DomainsCmd, TokensCmd, TunnelsCmd};
use crate::client::ClientCommand;

/// Where beamd keeps its data when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "beamd-data";

/// beamd: a self-hosted tunnel edge with an event-sourced, replayable control plane.
#[derive(Debug, Parser)]
#[command(name = "beamd", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// beamd's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an edge node on the embedded sled log: agents connect over QUIC,
    /// WebSocket or TCP, public TCP connections are forwarded to them.
    Edge(Box<EdgeArgs>),
    /// Expose a local TCP port through an edge.
    Tcp(crate::agent::TcpArgs),
    /// Expose a local HTTP service through an edge, at NAME.<tunnel base>.
    Http(crate::agent::HttpArgs),
    /// Print stored events, in order, checking the hash chain as it reads.
    Replay(ReplayArgs),
    /// Verify the log (chain, sequence, decoding, stream index, Merkle tree),
    /// that every snapshot equals the fold of the events up to its seq, and
    /// with --since that the log extends a checkpoint saved earlier.
    Audit(crate::audit::AuditArgs),
    /// Print the edge's current signed checkpoint; --save keeps it with its tiles.
    Checkpoint(crate::tlog::cli::CheckpointArgs),
    /// Check an inclusion proof bundle offline against a checkpoint and the log's public key.
    VerifyProof(crate::tlog::cli::VerifyProofArgs),
    /// Run the deterministic simulation: the core under a seeded workload and faults.
    Simulate(crate::simulate::SimulateArgs),
    /// Measure beamd against its baselines.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Manage the tenant's keys through the API.
    Tokens {
        /// What to do.
        #[command(subcommand)]
        cmd: TokensCmd,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List or release tunnels through the API.
    Tunnels {
        /// What to do.
        #[command(subcommand)]
        cmd: TunnelsCmd,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Usage against the plan, day by day.
    Usage {
        /// Days to show, 1–365.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Requests captured by the inspector: the recent ones, or one in detail, or a replay.
    Requests {
        /// Show one request, or replay it (without: list the recent ones).
        #[command(subcommand)]
        cmd: Option<crate::client::requests::RequestsCmd>,
        /// How many recent requests to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep printing new requests as they come (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Manage custom domains through the API.
    Domains {
        /// What to do.
        #[command(subcommand)]
        cmd: DomainsCmd,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// A transport on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// QUIC over UDP (TLS 1.3 always).
    Quic,
    /// WebSocket over TCP.
    Ws,
    /// Plain TCP.
    Tcp,
}

impl TransportArg {
    /// The event vocabulary's name for it.
    pub fn kind(self) -> beamd_events::vocabulary::TransportKind {
        use beamd_events::vocabulary::TransportKind;
        match self {
            TransportArg::Quic => TransportKind::Quic,
            TransportArg::Ws => TransportKind::Ws,
            TransportArg::Tcp => TransportKind::Tcp,
        }
    }

    /// Its name on the command line and in output.
    pub fn kind_name(self) -> &'static str {
        match self {
            TransportArg::Quic => "quic",
            TransportArg::Ws => "ws",
            TransportArg::Tcp => "tcp",
        }
    }

    /// Where it listens unless told otherwise.
    pub fn default_listen(self) -> std::net::SocketAddr {
        let port = match self {
            TransportArg::Quic | TransportArg::Tcp => 7000,
            TransportArg::Ws => 7080,
        };
        std::net::SocketAddr::from(([0, 0, 0, 0], port))
    }
}

/// An inclusive port range, `FROM-TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad port range {s:?}: expected FROM-TO, e.g. 20000-20999");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a == 0 || a > b {
            return Err(bad());
        }
        Ok(PortRange(a, b))
    }
}

/// Options of `beamd edge`.
#[derive(Debug, clap::Args)]
pub struct EdgeArgs {
    /// The data directory (created if missing).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Transports to serve agents on (repeat for several).
    #[arg(long = "transport", value_enum, default_values_t = [TransportArg::Quic])]
    pub transports: Vec<TransportArg>,
    /// Where each transport listens, in the order of --transport (default 0.0.0.0:7000, ws 0.0.0.0:7080).
    #[arg(long = "listen")]
    pub listen: Vec<std::net::SocketAddr>,
    /// The address public TCP ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    pub public_host: std::net::IpAddr,
    /// The host name shown in public addresses (default: the public host, or localhost for 0.0.0.0).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Public TCP ports are allocated from this range.
    #[arg(long, default_value = "20000-20999")]
    pub tcp_ports: PortRange,
    /// Serve public HTTP for HTTP tunnels here (e.g. 0.0.0.0:8080); none by default.
    #[arg(long)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Serve public HTTPS instead of HTTP on --http-listen with this certificate chain (PEM, leaf first).
    #[arg(long, requires_all = ["tls_key", "http_listen"])]
    pub tls_cert: Option<PathBuf>,
    /// The PKCS#8 private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the REST API (and /metrics) here. Keep it on a private address: it is the control plane.
    #[arg(long, default_value = "127.0.0.1:4040")]
    pub api_listen: std::net::SocketAddr,
    /// Do not serve the REST API.
    #[arg(long)]
    pub no_api: bool,
    /// Refuse sign-ups (POST /api/v1/auth/register answers 403).
    #[arg(long)]
    pub no_signup: bool,
    /// The plan a sign-up's tenant gets: KEY=VALUE,… with name, tunnels
    /// (live at once), domains (custom domains), pending-domains (waiting
    /// for their TXT record at once), bandwidth-gib (per calendar month) or
    /// bandwidth-bytes; a number or `unlimited`. Keys left out keep the
    /// default's values.
    #[arg(long, default_value = crate::domain::tenant::DEFAULT_SIGNUP_PLAN,
        value_parser = |s: &str| crate::domain::tenant::parse_plan(s).map_err(|e| e.to_string()))]
    pub signup_plan: beamd_events::vocabulary::Plan,
    /// The SMTP relay (HOST-IP:PORT, plain SMTP) that password-reset mail goes through; without it mail is off.
    #[arg(long)]
    pub smtp_relay: Option<std::net::SocketAddr>,
    /// The sender of password-reset mail.
    #[arg(long, default_value = "beamd <noreply@localhost>")]
    pub mail_from: String,
    /// The public base URL of this control plane, for links in mail (default: http://<api listen address>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Record no RequestCaptured events: every tunnel is as `--inspect off`.
    #[arg(long)]
    pub no_capture: bool,
    /// Free space (MiB) kept on the data dir's disk: below it, API writes get
    /// 507, new agent sessions and request captures are refused, and traffic
    /// is still recorded. 0 turns the check off.
    #[arg(long, default_value_t = 64)]
    pub min_free_disk_mib: u64,
    /// Public connections one tenant's tunnels may hold open at once (TCP
    /// connections, and HTTP client connections with a stream to a tunnel);
    /// past it a TCP connection is closed and an HTTP request gets 503.
    #[arg(long, default_value_t = crate::edge::DEFAULT_TENANT_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tenant_connections: u64,
    /// File descriptors kept free: a connection accepted with fewer left is
    /// turned away (HTTP and the API: 503; others: closed). The edge raises its
    /// soft open-file limit to the hard one at start. 0 turns the check off.
    #[arg(long, default_value_t = beamd_transports::DEFAULT_FD_RESERVE)]
    pub fd_reserve: u64,
    /// Seconds the service behind an HTTP tunnel has to start answering before the client gets 504.
    #[arg(long, default_value_t = 30)]
    pub upstream_timeout_secs: u64,
    /// Seconds a public HTTP client has to send its headers or keep a connection idle (0 = no limit).
    #[arg(long, default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// The DNS server (IP:PORT, UDP) asked for custom-domain TXT records (default: the system's).
    #[arg(long)]
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Let the edge connect to this network on a tenant's behalf (gateway
    /// upstream URLs and their health checks), repeatable. Without it the
    /// edge connects only to public addresses: loopback, private, link-local,
    /// unique-local, CGNAT, multicast and reserved ones are refused, and so
    /// are the edge's own listeners, allowed or not. Example: 10.0.0.0/8.
    #[arg(long = "egress-allow", value_name = "CIDR")]
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Public HTTP clients in this network (a load balancer in front of the
    /// edge) may set X-Forwarded-For, X-Real-IP and Forwarded, repeatable;
    /// from anyone else those headers are dropped and set from the TCP peer.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds between checks of custom domains still waiting for their TXT record.
    #[arg(long, default_value_t = 30)]
    pub domain_recheck_secs: u64,
    /// How long a custom domain may wait for its TXT record before its claim
    /// lapses and anyone may add the host (e.g. 72h, 30m, 90s, 3d).
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub domain_claim_ttl: std::time::Duration,
    /// Seconds between health probes of gateway services with a healthCheckPath.
    #[arg(long, default_value_t = 10)]
    pub health_interval_secs: u64,
    /// Serve TCP and WebSocket agents over TLS as well (QUIC always is).
    #[arg(long)]
    pub tls: bool,
    /// A certificate chain (PEM, leaf first) to use instead of the self-signed one.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The PKCS#8 private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Import agent tokens from this file into the default tenant at start (see README).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// An offline tunnel keeps its port for its agent this long, then is released.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u64,
    /// Base host of the default tenant's HTTP tunnels.
    #[arg(long, default_value = "localhost")]
    pub tunnel_base: String,
    /// When appends are flushed: always, interval:<ms>, or off (benchmarks only: acknowledged events can be lost).
    #[arg(long, default_value = "always")]
    pub durability: Durability,
    /// Keep the event log on NATS JetStream (`nats://HOST:PORT[,HOST:PORT…]`,
    /// one stream replica per server up to 3) instead of the data dir's sled,
    /// so that several edges share one log; the data dir keeps this node's
    /// id, snapshots and inspector index.
    #[arg(long, value_name = "nats://HOST:PORT[,…]")]
    pub log: Option<String>,
    /// Seconds between the node's heartbeat events.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// Snapshot projections and entities after this many new events (0 = only on shutdown).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Stop (after a snapshot) a tenant, key or tunnel actor that got no message for this long.
    #[arg(long, default_value_t = 300)]
    pub actor_idle_secs: u64,
    /// Bytes reported to a tunnel are recorded as one event per window of this length.
    #[arg(long, default_value_t = 1_000)]
    pub traffic_window_ms: u64,
    /// Recent captured requests kept in memory per tenant (older ones stay in the history index).
    #[arg(long, default_value_t = crate::projections::DEFAULT_RECENT)]
    pub inspector_recent: usize,
    /// The transparency log.
    #[command(flatten)]
    pub tlog: crate::tlog::TlogArgs,
    /// Full capture.
    #[command(flatten)]
    pub inspect: crate::inspector::InspectArgs,
    /// HTTP/2 limits of the public ingress.
    #[command(flatten)]
    pub h2: crate::edge::H2Args,
}

/// Output formats of `beamd replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// One JSON object per line.
    Json,
    /// One human-readable line per event.
    Text,
}

/// Options of `beamd replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The data directory to read.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Read this NATS JetStream log instead of the data dir's sled log.
    #[arg(long, value_name = "nats://HOST:PORT[,HOST:PORT…]")]
    pub log: Option<String>,
    /// First seq to print.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last seq to print.
    #[arg(long)]
    pub to: Option<u64>,
    /// Only the events of this stream (a tenant, key, tunnel, domain or node id).
    #[arg(long)]
    pub stream: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: ReplayFormat,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Edge(args) => runtime.block_on(crate::edge::run(*args)),
        Command::Tcp(args) => runtime.block_on(crate::agent::run_tcp(args)),
        Command::Http(args) => runtime.block_on(crate::agent::run_http(args)),
        Command::Replay(args) => runtime.block_on(crate::replay::run(args)),
        Command::Audit(args) => runtime.block_on(crate::audit::run(args)),
        Command::Checkpoint(args) => runtime.block_on(crate::tlog::cli::checkpoint(args)),
        Command::VerifyProof(args) => crate::tlog::cli::verify_proof(args),
        Command::Simulate(args) => crate::simulate::run_cli(args),
        Command::Bench(cmd) => crate::bench::run(cmd, &runtime),
        Command::Tokens { cmd, api } => {
            runtime.block_on(crate::client::run(ClientCommand::Tokens(cmd), api))
        }
        Command::Tunnels { cmd, api } => {
            runtime.block_on(crate::client::run(ClientCommand::Tunnels(cmd), api))
        }
        Command::Usage { days, api } => {
            runtime.block_on(crate::client::run(ClientCommand::Usage { days }, api))
        }
        Command::Requests {
            cmd,
            limit,
            follow,
            api,
        } => runtime.block_on(crate::client::run(
            ClientCommand::Requests { cmd, limit, follow },
            api,
        )),
        Command::Domains { cmd, api } => {
            runtime.block_on(crate::client::run(ClientCommand::Domains(cmd), api))
        }
    }
}
