//! The flags of `beamd bench …`, one subcommand per measurement, and the
//! options each measurement runs with.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::TransportArg;
use crate::bench::{core, h2, http, idle, log, scale, tunnel};

/// `beamd bench …` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and replay throughput of the log against raw sled and write+fdatasync.
    Log(LogBenchArgs),
    /// Commands through the actors, traffic ingest, start-up with and without snapshots, usage queries.
    Core(CoreBenchArgs),
    /// TCP throughput and connection setup through each transport against a direct connection.
    Tunnel(TunnelBenchArgs),
    /// HTTP requests/s and p50/p99 latency through an HTTP tunnel without, with and with full capture, against direct.
    Http(HttpBenchArgs),
    /// HTTP/2 requests/s and p50/p99 latency by h2load through an HTTP tunnel against direct; needs h2load.
    H2(H2BenchArgs),
    /// Resident memory of the edge and the agent with many idle tunnels, then many open connections.
    Idle(IdleBenchArgs),
    /// events/s and commands/s on sled against NATS JetStream (3 servers, replicas 3) with 1 and 3 edges; needs nats-server.
    Scale(ScaleBenchArgs),
    /// The agents of `bench idle`, in their own process.
    #[command(hide = true)]
    IdleAgents(IdleAgentsArgs),
    /// The echo service of `bench idle`, holding every connection open.
    #[command(hide = true)]
    Hold,
}

/// Runs one `beamd bench …` command on `runtime`.
pub fn run(cmd: BenchCommand, runtime: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Log(args) => runtime.block_on(log::run(args.into())),
        BenchCommand::Core(args) => runtime.block_on(core::run(args.into())),
        BenchCommand::Tunnel(args) => runtime.block_on(tunnel::run(args.into())),
        BenchCommand::Http(args) => runtime.block_on(http::run(args.into())),
        BenchCommand::H2(args) => runtime.block_on(h2::run(args.into())),
        BenchCommand::Idle(args) => runtime.block_on(idle::run(args.into())),
        BenchCommand::Scale(args) => runtime.block_on(scale::run(args.into())),
        BenchCommand::IdleAgents(args) => runtime.block_on(idle::agents(args.into())),
        BenchCommand::Hold => runtime.block_on(idle::hold()),
    }
}

/// Options of `beamd bench log`.
#[derive(Debug, clap::Args)]
pub struct LogBenchArgs {
    /// Where to put the scratch databases (a fresh temporary dir by default; removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Multiply every event count by this (e.g. 0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Events in the log that the replay figures read.
    #[arg(long, default_value_t = 200_000)]
    pub replay_events: u64,
}

impl From<LogBenchArgs> for log::LogBenchOptions {
    fn from(a: LogBenchArgs) -> Self {
        log::LogBenchOptions {
            dir: a.dir,
            scale: a.scale,
            replay_events: a.replay_events,
        }
    }
}

/// Options of `beamd bench core`.
#[derive(Debug, clap::Args)]
pub struct CoreBenchArgs {
    /// Where to put the scratch data dirs (a fresh temporary dir by default; removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Tenants for the command benchmark.
    #[arg(long, default_value_t = 1_000)]
    pub tenants: usize,
    /// Tunnels opened and closed (and then fed traffic) in the command benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub tunnels: usize,
    /// Events in the log for the start-up and query figures.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
}

impl From<CoreBenchArgs> for core::CoreBenchOptions {
    fn from(a: CoreBenchArgs) -> Self {
        core::CoreBenchOptions {
            dir: a.dir,
            tenants: a.tenants,
            tunnels: a.tunnels,
            events: a.events,
        }
    }
}

/// Options of `beamd bench tunnel`.
#[derive(Debug, clap::Args)]
pub struct TunnelBenchArgs {
    /// MiB each connection sends (and gets echoed back) in the throughput run.
    #[arg(long, default_value_t = 64)]
    pub mib: usize,
    /// Concurrent connections in the throughput run.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Connections timed for the setup latency (median).
    #[arg(long, default_value_t = 300)]
    pub setups: usize,
}

impl From<TunnelBenchArgs> for tunnel::TunnelBenchOptions {
    fn from(a: TunnelBenchArgs) -> Self {
        tunnel::TunnelBenchOptions {
            mib: a.mib,
            connections: a.connections,
            setups: a.setups,
        }
    }
}

/// Options of `beamd bench http`.
#[derive(Debug, clap::Args)]
pub struct HttpBenchArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Seconds each path is measured (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The agent's transport.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: TransportArg,
    /// More options for both edges, e.g. --edge-args="--durability interval:100".
    #[arg(long, allow_hyphen_values = true)]
    pub edge_args: Option<String>,
}

impl From<HttpBenchArgs> for http::HttpBenchOptions {
    fn from(a: HttpBenchArgs) -> Self {
        http::HttpBenchOptions {
            connections: a.connections,
            seconds: a.seconds,
            transport: a.transport.into(),
            edge_args: a.edge_args,
        }
    }
}

/// Options of `beamd bench h2`.
#[derive(Debug, clap::Args)]
pub struct H2BenchArgs {
    /// Concurrent HTTP/2 connections (h2load -c).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Concurrent streams per connection (h2load -m).
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Seconds each path is measured (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The agent's transport.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: TransportArg,
    /// The tunnel's inspect mode.
    #[arg(long, default_value = "meta", value_parser = ["off", "meta", "full"])]
    pub inspect: String,
}

impl From<H2BenchArgs> for h2::H2BenchOptions {
    fn from(a: H2BenchArgs) -> Self {
        h2::H2BenchOptions {
            clients: a.clients,
            streams: a.streams,
            seconds: a.seconds,
            transport: a.transport.into(),
            inspect: a.inspect,
        }
    }
}

/// Options of `beamd bench idle`.
#[derive(Debug, clap::Args)]
pub struct IdleBenchArgs {
    /// Idle tunnels opened, each by its own agent connection.
    #[arg(long, default_value_t = 1000)]
    pub tunnels: usize,
    /// Public connections then opened and held, spread over the tunnels.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Transports to measure, one edge each (repeat the flag).
    #[arg(long, value_enum, default_values = ["tcp", "quic", "ws"])]
    pub transport: Vec<TransportArg>,
}

impl From<IdleBenchArgs> for idle::IdleBenchOptions {
    fn from(a: IdleBenchArgs) -> Self {
        idle::IdleBenchOptions {
            tunnels: a.tunnels,
            connections: a.connections,
            transport: a.transport.into_iter().map(Into::into).collect(),
        }
    }
}

/// Options of the hidden `beamd bench idle-agents`: the agent side of `bench idle`.
#[derive(Debug, clap::Args)]
pub struct IdleAgentsArgs {
    /// The edge's agent address.
    #[arg(long)]
    pub edge: String,
    /// How to reach the edge.
    #[arg(long, value_enum)]
    pub transport: TransportArg,
    /// The edge's certificate fingerprint.
    #[arg(long)]
    pub fingerprint: String,
    /// How many tunnels (agent connections) to open.
    #[arg(long)]
    pub tunnels: usize,
    /// The local port every tunnel forwards to.
    #[arg(long)]
    pub local_port: u16,
}

impl From<IdleAgentsArgs> for idle::IdleAgentsOptions {
    fn from(a: IdleAgentsArgs) -> Self {
        idle::IdleAgentsOptions {
            edge: a.edge,
            transport: a.transport.into(),
            fingerprint: a.fingerprint,
            tunnels: a.tunnels,
            local_port: a.local_port,
        }
    }
}

/// Options of `beamd bench scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleBenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent appenders for events/s, spread over the writers.
    #[arg(long, default_value_t = 64)]
    pub writers: usize,
    /// Concurrent API clients for commands/s, spread over the edges.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
}

impl From<ScaleBenchArgs> for scale::ScaleBenchOptions {
    fn from(a: ScaleBenchArgs) -> Self {
        scale::ScaleBenchOptions {
            seconds: a.seconds,
            writers: a.writers,
            clients: a.clients,
        }
    }
}
