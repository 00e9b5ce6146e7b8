//! `beamd tcp` and `beamd http`: expose a local port through an edge,
//! reconnecting with exponential backoff and jitter, and asking for the same
//! public port (or name) back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::{
    Connection, QuicTransport, StreamTls, TcpTransport, Transport, WsTransport,
};
use tokio::net::TcpStream;

use super::link::{trust, ShareLink};
use crate::cli::TransportArg;
use crate::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, StreamHeader, Token, TunnelRequest,
    PROTOCOL_VERSION,
};
use crate::pump;

/// How an agent reaches and trusts the edge: shared by `beamd tcp` and `beamd http`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentConn {
    /// The edge's agent address, HOST:PORT, or a share link beamd://TOKEN@HOST:PORT?transport=…&fingerprint=….
    #[arg(long, env = "BEAMD_EDGE")]
    pub edge: String,
    /// How to reach the edge.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: TransportArg,
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
    /// How to reach the edge.
    #[command(flatten)]
    pub conn: AgentConn,
}

/// Why a connection attempt ended.
enum Ended {
    /// The edge refused for good (bad token, limit, conflict): stop.
    Refused(String),
    /// The connection failed or dropped: try again.
    Lost(String),
}

const FATAL: &[&str] = &[
    "unauthorized",
    "unsupported_version",
    "invalid_request",
    "limit_exceeded",
    "conflict",
];
const HEARTBEAT: Duration = Duration::from_secs(15);

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
    let edge = tokio::net::lookup_host(&args.edge)
        .await
        .with_context(|| format!("cannot resolve the edge {}", args.edge))?
        .next()
        .with_context(|| format!("the edge {} has no address", args.edge))?;
    let encrypted = args.transport == TransportArg::Quic || args.tls;
    let trust = if encrypted {
        Some(trust(&args, fingerprint.as_deref())?)
    } else {
        None
    };
    let stream_tls = || StreamTls::new(None, trust.as_ref());
    let args = AgentConn {
        token: Some(token),
        ..args
    };
    let agent = Agent {
        args: &args,
        label,
        announce,
    };
    match (args.transport, args.tls) {
        (TransportArg::Quic, _) => {
            agent
                .run_with(QuicTransport::new(None, trust.as_ref())?, edge, request)
                .await
        }
        (TransportArg::Ws, false) => agent.run_with(WsTransport::plain(), edge, request).await,
        (TransportArg::Ws, true) => {
            agent
                .run_with(WsTransport::with_tls(stream_tls()?), edge, request)
                .await
        }
        (TransportArg::Tcp, false) => agent.run_with(TcpTransport::plain(), edge, request).await,
        (TransportArg::Tcp, true) => {
            agent
                .run_with(TcpTransport::with_tls(stream_tls()?), edge, request)
                .await
        }
    }
}

/// A running agent: its connection options and how it names itself in output.
struct Agent<'a> {
    args: &'a AgentConn,
    label: &'static str,
    /// Where the public address goes instead of stdout (benchmarks).
    announce: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Agent<'_> {
    async fn run_with<T: Transport>(
        &self,
        transport: T,
        edge: SocketAddr,
        mut request: TunnelRequest,
    ) -> Result<ExitCode> {
        let (args, label) = (self.args, self.label);
        let mut failures = 0u32;
        let mut backoff = Duration::from_millis(250);
        loop {
            let (ended, assigned) = self.attempt(&transport, edge, &request).await;
            if assigned.is_some() {
                // A TCP tunnel asks for the port it had; an HTTP one keeps its name.
                request.port = request
                    .port
                    .or(assigned)
                    .filter(|_| request.protocol == TunnelProtocol::Tcp);
                failures = 0;
                backoff = Duration::from_millis(250);
            }
            match ended {
                Ended::Refused(why) => {
                    eprintln!("{label}: the edge refused: {why}");
                    return Ok(ExitCode::FAILURE);
                }
                Ended::Lost(why) => {
                    failures += 1;
                    if args.max_retries > 0 && failures >= args.max_retries {
                        eprintln!("{label}: giving up after {failures} failed attempts: {why}");
                        return Ok(ExitCode::FAILURE);
                    }
                    // Full jitter around the current backoff, so that many agents do not reconnect in step.
                    let wait = backoff.mul_f64(0.5 + fastrand::f64());
                    eprintln!(
                        "{label}: connection lost ({why}); reconnecting in {} ms",
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One connection: hello, welcome, then serve streams until it drops.
    async fn attempt<T: Transport>(
        &self,
        transport: &T,
        edge: SocketAddr,
        request: &TunnelRequest,
    ) -> (Ended, Option<u16>) {
        let args = self.args;
        let conn = match transport.connect(edge).await {
            Ok(c) => Arc::new(c),
            Err(e) => return (Ended::Lost(e.to_string()), None),
        };
        let Ok(mut control) = conn.open_stream().await else {
            return (Ended::Lost("cannot open the control stream".into()), None);
        };
        let local = request.local_addr.clone();
        let hello = AgentFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: Token(args.token.clone().unwrap_or_default()),
            tunnels: vec![request.clone()],
        });
        if let Err(e) = write_frame(&mut control, &hello).await {
            return (Ended::Lost(e.to_string()), None);
        }
        let welcome = tokio::time::timeout(
            Duration::from_secs(15),
            read_frame::<EdgeFrame>(&mut control),
        )
        .await;
        let assigned = match welcome {
            Ok(Ok(EdgeFrame::Welcome { tunnels, .. })) => tunnels,
            Ok(Ok(EdgeFrame::Error(e))) if FATAL.contains(&e.code.as_str()) => {
                return (Ended::Refused(format!("{}: {}", e.code, e.message)), None)
            }
            Ok(Ok(EdgeFrame::Error(e))) => {
                return (Ended::Lost(format!("{}: {}", e.code, e.message)), None)
            }
            Ok(Ok(EdgeFrame::Heartbeat)) => return (Ended::Lost("no welcome".into()), None),
            Ok(Err(e)) => return (Ended::Lost(e.to_string()), None),
            Err(_) => return (Ended::Lost("no welcome within 15 s".into()), None),
        };
        let Some(tunnel) = assigned.first() else {
            return (Ended::Lost("the edge assigned no tunnel".into()), None);
        };
        if let Some(tx) = &self.announce {
            let _ = tx.send(tunnel.public.clone());
        } else {
            crate::say!(
                "{}: tunnel {} -> {local} ({})",
                self.label,
                tunnel.public,
                tunnel.id
            );
            for alias in &tunnel.aliases {
                crate::say!("{}: also at {alias}", self.label);
            }
            if let Some(notice) = &tunnel.notice {
                crate::say!("{}: {notice}", self.label);
            }
        }
        let assigned_port = tunnel.port;
        let streams = {
            let (conn, local) = (conn.clone(), local.clone());
            tokio::spawn(async move {
                while let Ok(stream) = conn.accept_stream().await {
                    tokio::spawn(forward(stream, local.clone()));
                }
            })
        };
        let (mut reader, mut writer) = tokio::io::split(control);
        let beats = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                if write_frame(&mut writer, &AgentFrame::Heartbeat)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let ended = loop {
            match read_frame::<EdgeFrame>(&mut reader).await {
                Ok(EdgeFrame::Heartbeat) => continue,
                Ok(EdgeFrame::Error(e)) if FATAL.contains(&e.code.as_str()) => {
                    break Ended::Refused(format!("{}: {}", e.code, e.message))
                }
                Ok(EdgeFrame::Error(e)) => break Ended::Lost(format!("{}: {}", e.code, e.message)),
                Ok(EdgeFrame::Welcome { .. }) => {
                    break Ended::Lost("unexpected second welcome".into())
                }
                Err(e) => break Ended::Lost(e.to_string()),
            }
        };
        beats.abort();
        streams.abort();
        conn.close();
        (ended, assigned_port)
    }
}

/// Forwards one stream the edge opened to the local service.
async fn forward<S>(mut stream: S, local: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let header = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<StreamHeader>(&mut stream),
    )
    .await;
    if !matches!(header, Ok(Ok(_))) {
        return;
    }
    let Ok(service) = TcpStream::connect(&local).await else {
        return; // the public client sees its connection close
    };
    let _ = service.set_nodelay(true);
    pump::join(stream, service, None, None).await;
}
