//! `beamd tcp`: expose a local TCP port through an edge, reconnecting with
//! exponential backoff and jitter, and asking for the same public port back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::tls::Trust;
use beamd_transports::{Connection, QuicTransport, TcpTransport, Transport, WsTransport};
use tokio::net::TcpStream;

use crate::cli::TransportArg;
use crate::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, StreamHeader, Token, TunnelRequest,
    PROTOCOL_VERSION,
};
use crate::pump;

/// Options of `beamd tcp`.
#[derive(Debug, clap::Args)]
pub struct TcpArgs {
    /// The local port to expose.
    pub local_port: u16,
    /// The edge's agent address, HOST:PORT.
    #[arg(long, env = "BEAMD_EDGE")]
    pub edge: String,
    /// How to reach the edge.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: TransportArg,
    /// The agent token, tok_<id>.<secret>.
    #[arg(long, env = "BEAMD_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Ask for this public port (by default any free one, then the same one on every reconnect).
    #[arg(long)]
    pub remote_port: Option<u16>,
    /// The host of the local service.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_host: String,
    /// Trust the edge whose certificate has this SHA-256 fingerprint (printed by `beamd edge`).
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

fn trust(args: &TcpArgs) -> Result<Option<Trust>> {
    if args.insecure {
        eprintln!("beamd tcp: WARNING: --insecure: the edge is not verified; anyone in the path can impersonate it");
        return Ok(Some(Trust::Insecure));
    }
    if let Some(fp) = &args.fingerprint {
        let clean = fp.replace(':', "");
        if clean.len() != 64 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--fingerprint must be 64 hex digits (colons allowed)");
        }
        return Ok(Some(Trust::Fingerprint(clean)));
    }
    if let Some(ca) = &args.ca {
        return Ok(Some(Trust::ca_file(ca)?));
    }
    Ok(None)
}

/// Runs `beamd tcp`.
pub async fn run_tcp(args: TcpArgs) -> Result<ExitCode> {
    if Token(args.token.clone()).parts().is_none() {
        bail!("the token must look like tok_<id>.<secret>");
    }
    let edge = tokio::net::lookup_host(&args.edge)
        .await
        .with_context(|| format!("cannot resolve the edge {}", args.edge))?
        .next()
        .with_context(|| format!("the edge {} has no address", args.edge))?;
    let trust = trust(&args)?;
    match args.transport {
        TransportArg::Quic => {
            let trust =
                trust.context("QUIC verifies the edge: pass --fingerprint, --ca or --insecure")?;
            run_with(QuicTransport::new(None, Some(&trust))?, edge, &args).await
        }
        TransportArg::Ws => run_with(WsTransport, edge, &args).await,
        TransportArg::Tcp => run_with(TcpTransport, edge, &args).await,
    }
}

async fn run_with<T: Transport>(
    transport: T,
    edge: SocketAddr,
    args: &TcpArgs,
) -> Result<ExitCode> {
    let mut port = args.remote_port;
    let mut failures = 0u32;
    let mut backoff = Duration::from_millis(250);
    loop {
        let (ended, assigned) = attempt(&transport, edge, args, port).await;
        if assigned.is_some() {
            port = assigned;
            failures = 0;
            backoff = Duration::from_millis(250);
        }
        match ended {
            Ended::Refused(why) => {
                eprintln!("beamd tcp: the edge refused: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Ended::Lost(why) => {
                failures += 1;
                if args.max_retries > 0 && failures >= args.max_retries {
                    eprintln!("beamd tcp: giving up after {failures} failed attempts: {why}");
                    return Ok(ExitCode::FAILURE);
                }
                // Full jitter around the current backoff, so that many agents do not reconnect in step.
                let wait = backoff.mul_f64(0.5 + fastrand::f64());
                eprintln!(
                    "beamd tcp: connection lost ({why}); reconnecting in {} ms",
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
    transport: &T,
    edge: SocketAddr,
    args: &TcpArgs,
    port: Option<u16>,
) -> (Ended, Option<u16>) {
    let conn = match transport.connect(edge).await {
        Ok(c) => Arc::new(c),
        Err(e) => return (Ended::Lost(e.to_string()), None),
    };
    let Ok(mut control) = conn.open_stream().await else {
        return (Ended::Lost("cannot open the control stream".into()), None);
    };
    let local = format!("{}:{}", args.local_host, args.local_port);
    let hello = AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token(args.token.clone()),
        tunnels: vec![TunnelRequest {
            protocol: TunnelProtocol::Tcp,
            local_addr: local.clone(),
            port,
            name: None,
        }],
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
    crate::say!(
        "beamd tcp: tunnel {} -> {local} ({})",
        tunnel.public,
        tunnel.id
    );
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
            Ok(EdgeFrame::Welcome { .. }) => break Ended::Lost("unexpected second welcome".into()),
            Err(e) => break Ended::Lost(e.to_string()),
        }
    };
    beats.abort();
    streams.abort();
    conn.close();
    (ended, assigned_port)
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
