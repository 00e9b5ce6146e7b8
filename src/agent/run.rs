//! `beamd tcp` and `beamd http`: expose a local port through an edge,
//! reconnecting with exponential backoff and jitter, and asking for the same
//! public port (or name) back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::{InspectMode, TunnelProtocol};

use super::dial::{parse_edges, uses_quic, AgentTransport, Dialers, EdgeAddr, QUIC_FALLBACK_AFTER};
use super::session::{Agent, Ended};
use super::trust::trust;
use crate::cli::TransportArg;
use crate::protocol::{ShareLink, Token, TunnelRequest, UpstreamProtocol};

/// How an agent reaches and trusts the edge: shared by `beamd tcp` and `beamd http`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentConn {
    /// The edge's agent address HOST:PORT, or several edges of one cluster
    /// (HOST:PORT,HOST:PORT,…: the agent moves to the next when its edge goes
    /// away), each optionally prefixed quic://, ws:// or tcp://; or a share
    /// link beamd://TOKEN@HOST:PORT[,…]?transport=…&fingerprint=….
    #[arg(long, env = "BEAMD_EDGE")]
    pub edge: String,
    /// How to reach the edge; auto tries QUIC, then WebSocket, then TCP at
    /// each edge, using the first that connects.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: AgentTransport,
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

/// Options of `beamd tcp`.
#[derive(Debug, clap::Args)]
pub struct TcpArgs {
    /// The local port to expose.
    pub local_port: u16,
    /// Ask for this public port (by default any free one, then the same one on every reconnect).
    #[arg(long)]
    pub remote_port: Option<u16>,
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConn,
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
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConn,
}

fn parse_upstream(s: &str) -> std::result::Result<UpstreamProtocol, String> {
    match s {
        "http1" => Ok(UpstreamProtocol::Http1),
        "h2c" => Ok(UpstreamProtocol::H2c),
        _ => Err(format!("{s:?} is not one of http1, h2c")),
    }
}

fn parse_inspect(s: &str) -> std::result::Result<InspectMode, String> {
    InspectMode::parse(s).ok_or_else(|| format!("{s:?} is not one of off, meta, full"))
}

/// What `beamd tcp` asks the edge for.
fn tcp_request(args: &TcpArgs) -> TunnelRequest {
    TunnelRequest {
        protocol: TunnelProtocol::Tcp,
        local_addr: format!("{}:{}", args.conn.local_host, args.local_port),
        port: args.remote_port,
        name: None,
        domain: None,
        basic_auth: None,
        allow: Vec::new(),
        inspect: None,
        upstream: Default::default(),
    }
}

/// Runs `beamd tcp`.
pub async fn run_tcp(args: TcpArgs) -> Result<ExitCode> {
    let request = tcp_request(&args);
    run(args.conn, request, "beamd tcp", None).await
}

/// Runs `beamd tcp` quietly, sending the public address of each (re)assigned
/// tunnel to `public` instead of printing it: many agents in one process.
pub async fn run_tcp_reporting(
    args: TcpArgs,
    public: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<ExitCode> {
    let request = tcp_request(&args);
    run(args.conn, request, "beamd tcp", Some(public)).await
}

/// Runs `beamd http`.
pub async fn run_http(args: HttpArgs) -> Result<ExitCode> {
    let local = format!("{}:{}", args.conn.local_host, args.local_port);
    let name = args
        .name
        .unwrap_or_else(|| format!("t{:08x}", fastrand::u32(..)));
    let request = TunnelRequest {
        protocol: TunnelProtocol::Http,
        local_addr: local,
        port: None,
        name: Some(name),
        domain: args.domain,
        basic_auth: args.basic_auth,
        allow: args.allow,
        inspect: args.inspect,
        upstream: args.upstream,
    };
    run(args.conn, request, "beamd http", None).await
}
/// Connects per `args` and serves the tunnel `request` until refused.
async fn run(
    mut args: AgentConn,
    request: TunnelRequest,
    label: &'static str,
    announce: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<ExitCode> {
    let mut fingerprint = args.fingerprint.clone();
    if let Some(link) = ShareLink::parse(&args.edge) {
        args.edge = link.edge;
        args.token.get_or_insert(link.token);
        fingerprint = fingerprint.or(link.fingerprint);
        args.tls |= link.tls;
        if let Some(t) = link.transport {
            args.transport = clap::ValueEnum::from_str(&t, true)
                .map_err(|_| anyhow::anyhow!("the share link names an unknown transport {t:?}"))?;
        }
    }
    let token = args
        .token
        .clone()
        .context("no token: pass --token, set BEAMD_TOKEN, or use a beamd:// share link")?;
    if Token(token.clone()).parts().is_none() {
        bail!("the token must look like tok_<id>.<secret>");
    }
    let edges = parse_edges(&args.edge)?;
    let quic = uses_quic(&edges, args.transport);
    let trust = if quic || args.tls {
        Some(trust(&args, fingerprint.as_deref())?)
    } else {
        None
    };
    let dialers = Dialers::new(quic, args.tls, trust.as_ref())?;
    let args = AgentConn {
        token: Some(token),
        ..args
    };
    let agent = Agent {
        args: &args,
        label,
        announce,
    };
    serve(&agent, &dialers, &edges, request).await
}

/// Serves the tunnel, moving to the next edge whenever the current one is
/// lost or cannot be reached; backs off once every edge failed in a row.
async fn serve(
    agent: &Agent<'_>,
    dialers: &Dialers,
    edges: &[EdgeAddr],
    mut request: TunnelRequest,
) -> Result<ExitCode> {
    let (args, label) = (agent.args, agent.label);
    let pinned_port = request.port.is_some();
    let mut failures = 0u32;
    let mut backoff = Duration::from_millis(250);
    let mut at = 0usize;
    loop {
        let edge = &edges[at % edges.len()];
        let (ended, assigned) = at_edge(agent, dialers, edge, &request, edges.len() > 1).await;
        if assigned.is_some() {
            // A TCP tunnel asks for the port it had; an HTTP one keeps its name.
            request.port = request
                .port
                .or(assigned)
                .filter(|_| request.protocol == TunnelProtocol::Tcp);
            failures = 0;
            backoff = Duration::from_millis(250);
        }
        let why = match ended {
            Ended::Refused(why) => {
                eprintln!("{label}: the edge refused: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Ended::Lost(why) | Ended::Unreachable(why) => why,
        };
        if why.starts_with("port_unavailable") && !pinned_port {
            // The port it had is taken on this edge: any free one will do.
            request.port = None;
        }
        failures += 1;
        if args.max_retries > 0 && failures >= args.max_retries {
            eprintln!("{label}: giving up after {failures} failed attempts: {why}");
            return Ok(ExitCode::FAILURE);
        }
        at += 1;
        // The next edge at once; after a full round, full jitter around the
        // current backoff, so that many agents do not reconnect in step.
        let round_failed = failures as usize % edges.len() == 0;
        let wait = if round_failed {
            let wait = backoff.mul_f64(0.5 + fastrand::f64());
            backoff = (backoff * 2).min(Duration::from_secs(30));
            wait
        } else {
            Duration::from_millis(fastrand::u64(50..150))
        };
        let next = &edges[at % edges.len()].addr;
        eprintln!(
            "{label}: connection lost ({why}); reconnecting to {next} in {} ms",
            wait.as_millis()
        );
        tokio::time::sleep(wait).await;
    }
}

/// One edge: each of its transports in turn until one gets a welcome.
async fn at_edge(
    agent: &Agent<'_>,
    dialers: &Dialers,
    edge: &EdgeAddr,
    request: &TunnelRequest,
    more_edges: bool,
) -> (Ended, Option<u16>) {
    let addr = match tokio::net::lookup_host(&edge.addr)
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            return (
                Ended::Unreachable(format!("{} has no address", edge.addr)),
                None,
            )
        }
        Err(e) => {
            return (
                Ended::Unreachable(format!("cannot resolve {}: {e}", edge.addr)),
                None,
            )
        }
    };
    let order = edge.transports(agent.args.transport);
    let mut ended = Ended::Unreachable("no transport to try".into());
    for (i, transport) in order.iter().enumerate() {
        let fallback = more_edges || i + 1 < order.len();
        let (outcome, assigned) = match transport {
            TransportArg::Quic => {
                let Some(quic) = &dialers.quic else { continue };
                let within = fallback.then_some(QUIC_FALLBACK_AFTER);
                agent.attempt(quic, addr, request, within).await
            }
            TransportArg::Ws => agent.attempt(&dialers.ws, addr, request, None).await,
            TransportArg::Tcp => agent.attempt(&dialers.tcp, addr, request, None).await,
        };
        match outcome {
            Ended::Unreachable(why) if i + 1 < order.len() => {
                eprintln!(
                    "{}: {} to {addr} did not connect ({why}); trying {}",
                    agent.label,
                    transport.kind_name(),
                    order[i + 1].kind_name()
                );
                ended = Ended::Unreachable(why);
            }
            other => return (other, assigned),
        }
    }
    (ended, None)
}
