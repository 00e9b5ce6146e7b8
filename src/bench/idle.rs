//! `beamd bench idle`: resident memory of the edge and of the agent with many
//! idle tunnels, then with many open public connections through them.
//!
//! Three child processes of this binary keep the figures apart: the edge, one
//! process running every agent (`bench idle-agents`), and the local service
//! that holds the connections open (`bench hold`). This process only opens
//! the public connections.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::TransportKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::child::Spawned;

const TOKEN: &str = "tok_bench.0123456789abcdef0123456789abcdef";
/// How long memory is left to settle before each reading.
const SETTLE: Duration = Duration::from_secs(2);

/// Options of `beamd bench idle`.
#[derive(Debug, Clone)]
pub struct IdleBenchOptions {
    /// Idle tunnels opened, each by its own agent connection.
    pub tunnels: usize,
    /// Public connections then opened and held, spread over the tunnels.
    pub connections: usize,
    /// Transports to measure, one edge each (repeat the flag).
    pub transport: Vec<TransportKind>,
}

/// Options of the hidden `beamd bench idle-agents`: the agent side of `bench idle`.
#[derive(Debug, Clone)]
pub struct IdleAgentsOptions {
    /// The edge's agent address.
    pub edge: String,
    /// How to reach the edge.
    pub transport: TransportKind,
    /// The edge's certificate fingerprint.
    pub fingerprint: String,
    /// How many tunnels (agent connections) to open.
    pub tunnels: usize,
    /// The local port every tunnel forwards to.
    pub local_port: u16,
}

/// This process's or another's resident set size in KiB, from /proc.
fn rss_kib(pid: Option<u32>) -> Result<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// Runs the hidden `beamd bench hold`: an echo service that keeps every connection open.
pub async fn hold() -> Result<ExitCode> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    crate::say!("hold {}", listener.local_addr()?);
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// Runs the hidden `beamd bench idle-agents`: `tunnels` agents in one process.
pub async fn agents(args: IdleAgentsOptions) -> Result<ExitCode> {
    crate::say!("rss {}", rss_kib(None)?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..args.tunnels {
        let conn = crate::agent::AgentConn {
            edge: args.edge.clone(),
            transport: args.transport.into(),
            token: Some(TOKEN.into()),
            tls: false,
            local_host: "127.0.0.1".into(),
            fingerprint: Some(args.fingerprint.clone()),
            ca: None,
            insecure: false,
            max_retries: 0,
        };
        let tcp = crate::agent::TcpSettings {
            local_port: args.local_port,
            remote_port: None,
            proxy_protocol: None,
            conn,
            pool: false,
            health: None,
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::agent::run_tcp_reporting(tcp, tx).await {
                crate::say!("error {e:#}");
            }
        });
    }
    drop(tx);
    for _ in 0..args.tunnels {
        let public = rx
            .recv()
            .await
            .context("an agent ended before its tunnel opened")?;
        crate::say!("public {public}");
    }
    crate::say!("agents ready");
    std::future::pending::<()>().await;
    Ok(ExitCode::SUCCESS)
}

/// One transport's readings, in KiB.
struct Reading {
    edge_base: u64,
    edge_tunnels: u64,
    edge_conns: u64,
    agent_base: u64,
    agent_tunnels: u64,
    agent_conns: u64,
}

/// Opens `n` connections spread over `publics`, each proven end to end by one echoed byte.
async fn open_connections(publics: &[SocketAddr], n: usize) -> Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(n);
    // In waves, so the listen backlogs never overflow.
    for wave in (0..n).collect::<Vec<_>>().chunks(250) {
        let mut tasks = Vec::new();
        for &i in wave {
            let addr = publics[i % publics.len()];
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connect {addr}"))?;
                s.write_all(b"x").await?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b)
                    .await
                    .with_context(|| format!("echo through {addr}"))?;
                anyhow::Ok(s)
            }));
        }
        for t in tasks {
            held.push(t.await??);
        }
    }
    Ok(held)
}

async fn measure(
    args: &IdleBenchOptions,
    transport: TransportKind,
    hold: SocketAddr,
) -> Result<Reading> {
    let name = transport.as_str();
    let dir = std::env::temp_dir().join(format!("beamd-bench-idle-{:016x}", fastrand::u64(..)));
    let result = async {
        let edge = Spawned::spawn(
            &[
                "edge",
                "--data-dir",
                dir.to_str().context("dir")?,
                "--public-host",
                "127.0.0.1",
                "--no-api",
                "--transport",
                name,
                "--listen",
                "127.0.0.1:0",
            ]
            .map(String::from),
            &[("BEAMD_ADMIN_TOKEN", TOKEN), ("BEAMD_LOG", "warn")],
        )?;
        let (addr, fp) = edge.edge_ready()?;
        tokio::time::sleep(SETTLE).await;
        let edge_base = rss_kib(Some(edge.pid()))?;
        eprintln!("bench: {name}: opening {} tunnels", args.tunnels);
        let agents = Spawned::spawn(
            &[
                "bench".into(),
                "idle-agents".into(),
                "--edge".into(),
                addr,
                "--transport".into(),
                name.into(),
                "--fingerprint".into(),
                fp,
                "--tunnels".into(),
                args.tunnels.to_string(),
                "--local-port".into(),
                hold.port().to_string(),
            ],
            &[("BEAMD_LOG", "warn")],
        )?;
        let agent_base: u64 = agents
            .wait_for_line("rss ")?
            .trim_start_matches("rss ")
            .parse()?;
        let mut publics = Vec::with_capacity(args.tunnels);
        while publics.len() < args.tunnels {
            let line = agents.wait_for_line("")?;
            if let Some(e) = line.strip_prefix("error ") {
                bail!("an agent failed: {e}");
            }
            if let Some(p) = line.strip_prefix("public tcp://") {
                publics.push(
                    p.parse::<SocketAddr>()
                        .with_context(|| format!("public address {p}"))?,
                );
            }
        }
        tokio::time::sleep(SETTLE).await;
        let (edge_tunnels, agent_tunnels) =
            (rss_kib(Some(edge.pid()))?, rss_kib(Some(agents.pid()))?);
        eprintln!(
            "bench: {name}: opening {} public connections",
            args.connections
        );
        let held = open_connections(&publics, args.connections).await?;
        tokio::time::sleep(SETTLE).await;
        let (edge_conns, agent_conns) = (rss_kib(Some(edge.pid()))?, rss_kib(Some(agents.pid()))?);
        drop(held);
        drop(agents);
        drop(edge);
        anyhow::Ok(Reading {
            edge_base,
            edge_tunnels,
            edge_conns,
            agent_base,
            agent_tunnels,
            agent_conns,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// KiB per item between two readings, never negative.
fn per(after: u64, before: u64, items: usize) -> f64 {
    after.saturating_sub(before) as f64 / items.max(1) as f64
}

/// Runs `beamd bench idle`.
pub async fn run(args: IdleBenchOptions) -> Result<ExitCode> {
    let hold = Spawned::spawn(&["bench".into(), "hold".into()], &[])?;
    let hold_addr: SocketAddr = hold
        .wait_for_line("hold ")?
        .trim_start_matches("hold ")
        .parse()?;
    println!(
        "| transport | edge at rest MiB | edge per idle tunnel KiB | edge per open connection KiB | agent per idle tunnel KiB | agent per open connection KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for &t in &args.transport {
        let r = measure(&args, t, hold_addr).await?;
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            t.as_str(),
            r.edge_base as f64 / 1024.0,
            per(r.edge_tunnels, r.edge_base, args.tunnels),
            per(r.edge_conns, r.edge_tunnels, args.connections),
            per(r.agent_tunnels, r.agent_base, args.tunnels),
            per(r.agent_conns, r.agent_tunnels, args.connections),
        );
    }
    drop(hold);
    Ok(ExitCode::SUCCESS)
}
