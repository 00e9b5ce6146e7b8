//! The command line: one subcommand per job, parsed by clap.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use beamd_events::Durability;
use clap::{Parser, Subcommand, ValueEnum};

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
    /// Run an edge node on the embedded sled log (control plane only for now:
    /// it records its lifecycle and keeps projections; transports come next).
    Edge(EdgeArgs),
    /// Print stored events, in order, checking the hash chain as it reads.
    Replay(ReplayArgs),
    /// Verify the log (chain, sequence, decoding, stream index) and that every
    /// snapshot equals the fold of the events up to its seq.
    Audit(AuditArgs),
    /// Measure beamd against its baselines.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Options of `beamd edge`.
#[derive(Debug, clap::Args)]
pub struct EdgeArgs {
    /// The data directory (created if missing).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// When appends are flushed: always, interval:<ms>, or off (benchmarks only: acknowledged events can be lost).
    #[arg(long, default_value = "always")]
    pub durability: Durability,
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

/// Options of `beamd audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The data directory to verify.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// `beamd bench …` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and replay throughput of the log against raw sled and write+fdatasync.
    Log(crate::bench::log::LogBenchArgs),
    /// Commands through the actors, traffic ingest, start-up with and without snapshots, usage queries.
    Core(crate::bench::core::CoreBenchArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Edge(args) => runtime.block_on(crate::edge::run(args)),
        Command::Replay(args) => runtime.block_on(crate::replay::run(args)),
        Command::Audit(args) => crate::audit::run(args),
        Command::Bench(BenchCommand::Log(args)) => runtime.block_on(crate::bench::log::run(args)),
        Command::Bench(BenchCommand::Core(args)) => runtime.block_on(crate::bench::core::run(args)),
    }
}
