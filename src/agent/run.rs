//! `beamd tcp` and `beamd http`: expose a local port through an edge,
//! reconnecting with exponential backoff and jitter, and asking for the same
//! public port (or name) back.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::{TransportKind, TunnelProtocol};

use super::dial::{parse_edges, uses_quic, AgentTransport, Dialers, EdgeAddr, QUIC_FALLBACK_AFTER};
use super::plan::Plan;
use super::session::{Agent, Ended, Outcome, Wants};
use super::settings::{AgentConn, HttpSettings, TcpSettings, UdpSettings};
use super::trust::trust;
use super::HealthCheck;
use crate::protocol::{ShareLink, Token, TunnelRequest};

/// A TCP or UDP tunnel of `local_port` on the public port asked for (if any).
fn port_request(
    protocol: TunnelProtocol,
    conn: &AgentConn,
    local_port: u16,
    remote_port: Option<u16>,
) -> TunnelRequest {
    TunnelRequest {
        protocol,
        local_addr: format!("{}:{local_port}", conn.local_host),
        port: remote_port,
        name: None,
        domain: None,
        basic_auth: None,
        allow: Vec::new(),
        inspect: None,
        upstream: Default::default(),
        tag: None,
        proxy_protocol: None,
        pool: false,
        sign_in: None,
    }
}

/// What `beamd tcp` asks the edge for.
fn tcp_request(args: &TcpSettings) -> TunnelRequest {
    TunnelRequest {
        proxy_protocol: args.proxy_protocol,
        pool: args.pool,
        ..port_request(
            TunnelProtocol::Tcp,
            &args.conn,
            args.local_port,
            args.remote_port,
        )
    }
}

/// What changes the tunnels of `beamd tcp` or `beamd http`: its health
/// check, if it has one.
fn checked(request: &TunnelRequest, health: Option<HealthCheck>, label: &'static str) -> Wants {
    Wants(health.map(|check| super::health::watch(request.clone(), check, label)))
}

/// Runs `beamd tcp`.
pub async fn run_tcp(args: TcpSettings) -> Result<ExitCode> {
    let request = tcp_request(&args);
    let wants = checked(&request, args.health.clone(), "beamd tcp");
    run(args.conn, vec![request], "beamd tcp", None, wants).await
}

/// Runs `beamd tcp` quietly, sending the public address of each (re)assigned
/// tunnel to `public` instead of printing it: many agents in one process.
pub async fn run_tcp_reporting(
    args: TcpSettings,
    public: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<ExitCode> {
    let request = tcp_request(&args);
    run(
        args.conn,
        vec![request],
        "beamd tcp",
        Some(public),
        Wants(None),
    )
    .await
}

/// Runs `beamd udp`.
pub async fn run_udp(args: UdpSettings) -> Result<ExitCode> {
    let request = port_request(
        TunnelProtocol::Udp,
        &args.conn,
        args.local_port,
        args.remote_port,
    );
    run(args.conn, vec![request], "beamd udp", None, Wants(None)).await
}

/// Runs `beamd http`.
pub async fn run_http(args: HttpSettings) -> Result<ExitCode> {
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
        tag: None,
        proxy_protocol: None,
        pool: args.pool,
        sign_in: args
            .sign_in
            .map(|s| s.request().map(Box::new))
            .transpose()?,
    };
    let wants = checked(&request, args.health.clone(), "beamd http");
    run(args.conn, vec![request], "beamd http", None, wants).await
}

/// Runs `beamd start`: the tunnels of a config file over one connection. A
/// new set of tunnels on `reloads` (the file read again) is brought in line
/// without dropping the tunnels that stay.
pub async fn run_start(
    conn: AgentConn,
    tunnels: Vec<TunnelRequest>,
    reloads: tokio::sync::mpsc::UnboundedReceiver<Vec<TunnelRequest>>,
) -> Result<ExitCode> {
    run(conn, tunnels, "beamd start", None, Wants(Some(reloads))).await
}
/// Connects per `args` and serves the tunnels until refused.
async fn run(
    mut args: AgentConn,
    tunnels: Vec<TunnelRequest>,
    label: &'static str,
    announce: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    wants: Wants,
) -> Result<ExitCode> {
    let mut fingerprint = args.fingerprint.clone();
    if let Some(link) = ShareLink::parse(&args.edge) {
        args.edge = link.edge;
        args.token.get_or_insert(link.token);
        fingerprint = fingerprint.or(link.fingerprint);
        args.tls |= link.tls;
        if let Some(t) = link.transport {
            args.transport = AgentTransport::parse(&t).ok_or_else(|| {
                anyhow::anyhow!("the share link names an unknown transport {t:?}")
            })?;
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
    serve(&agent, &dialers, &edges, Plan::new(tunnels), wants).await
}

/// Serves the tunnels, moving to the next edge whenever the current one is
/// lost or cannot be reached; backs off once every edge failed in a row.
async fn serve(
    agent: &Agent<'_>,
    dialers: &Dialers,
    edges: &[EdgeAddr],
    mut plan: Plan,
    mut wants: Wants,
) -> Result<ExitCode> {
    let (args, label) = (agent.args, agent.label);
    let mut failures = 0u32;
    let mut backoff = Duration::from_millis(250);
    let mut at = 0usize;
    loop {
        if let Some(wanted) = wants.latest() {
            plan.replace(wanted, &mut Default::default());
        }
        while plan.nothing_to_ask() {
            eprintln!("{label}: no tunnel left to ask for; waiting for the config file to change or the health check to pass");
            let Some(wanted) = wants.next().await else {
                return Ok(ExitCode::FAILURE);
            };
            plan.replace(wanted, &mut Default::default());
        }
        let edge = &edges[at % edges.len()];
        let outcome = at_edge(agent, dialers, edge, &mut plan, &mut wants, edges.len() > 1).await;
        if outcome.welcomed {
            failures = 0;
            backoff = Duration::from_millis(250);
        }
        let why = match outcome.ended {
            Ended::Refused(why) => {
                eprintln!("{label}: the edge refused: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Ended::Lost(why) | Ended::Unreachable(why) => why,
        };
        if why.starts_with("port_unavailable") {
            // A port it had is taken on this edge: any free one will do.
            plan.forget_ports();
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
    plan: &mut Plan,
    wants: &mut Wants,
    more_edges: bool,
) -> Outcome {
    let addr = match tokio::net::lookup_host(&edge.addr)
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            let why = format!("{} has no address", edge.addr);
            return Outcome::before_welcome(Ended::Unreachable(why));
        }
        Err(e) => {
            let why = format!("cannot resolve {}: {e}", edge.addr);
            return Outcome::before_welcome(Ended::Unreachable(why));
        }
    };
    let order = edge.transports(agent.args.transport);
    let mut ended = Ended::Unreachable("no transport to try".into());
    for (i, transport) in order.iter().enumerate() {
        let fallback = more_edges || i + 1 < order.len();
        let outcome = match transport {
            TransportKind::Quic => {
                let Some(quic) = &dialers.quic else { continue };
                let within = fallback.then_some(QUIC_FALLBACK_AFTER);
                agent.attempt(quic, addr, plan, wants, within).await
            }
            TransportKind::Ws => agent.attempt(&dialers.ws, addr, plan, wants, None).await,
            TransportKind::Tcp => agent.attempt(&dialers.tcp, addr, plan, wants, None).await,
        };
        match outcome.ended {
            Ended::Unreachable(why) if i + 1 < order.len() && !outcome.welcomed => {
                eprintln!(
                    "{}: {} to {addr} did not connect ({why}); trying {}",
                    agent.label,
                    transport.as_str(),
                    order[i + 1].as_str()
                );
                ended = Ended::Unreachable(why);
            }
            _ => return outcome,
        }
    }
    Outcome::before_welcome(ended)
}
