//! The command line: one subcommand per job, parsed by clap into the plain
//! settings the commands run with. Nothing below it sees a flag.

mod agent;
mod agent_file;
mod bench;
mod client;
mod edge;
mod file;
mod log;
mod simulate;
mod start;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use agent::{AgentConnArgs, AgentTransportArg, HttpArgs, TcpArgs};
pub use bench::BenchCommand;
pub use client::{ApiArgs, DomainsArgs, RequestsArgs, TokensArgs, TunnelsArgs};
pub use edge::{EdgeArgs, H2Args, InspectArgs, PortRange, TlogArgs, TransportArg};
pub use log::{AuditArgs, CheckpointArgs, ReplayArgs, ReplayFormatArg, VerifyProofArgs};
pub use simulate::SimulateArgs;
pub use start::StartArgs;

use crate::client::ClientCommand;

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
    Tcp(TcpArgs),
    /// Expose a local HTTP service through an edge, at NAME.<tunnel base>.
    Http(HttpArgs),
    /// Run the tunnels of a config file (all, or the NAMEs given) over one
    /// connection to the edge; SIGHUP reloads the file.
    Start(StartArgs),
    /// Print stored events, in order, checking the hash chain as it reads.
    Replay(ReplayArgs),
    /// Verify the log (chain, sequence, decoding, stream index, Merkle tree),
    /// that every snapshot equals the fold of the events up to its seq, and
    /// with --since that the log extends a checkpoint saved earlier.
    Audit(AuditArgs),
    /// Print the edge's current signed checkpoint; --save keeps it with its tiles.
    Checkpoint(CheckpointArgs),
    /// Check an inclusion proof bundle offline against a checkpoint and the log's public key.
    VerifyProof(VerifyProofArgs),
    /// Run the deterministic simulation: the core under a seeded workload and faults.
    Simulate(SimulateArgs),
    /// Measure beamd against its baselines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage the tenant's keys through the API.
    Tokens {
        /// What to do.
        #[command(subcommand)]
        cmd: TokensArgs,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List or release tunnels through the API.
    Tunnels {
        /// What to do.
        #[command(subcommand)]
        cmd: TunnelsArgs,
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
        cmd: Option<RequestsArgs>,
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
        cmd: DomainsArgs,
        /// The API and key.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Edge(args) => runtime.block_on(crate::node::run((*args).try_into()?)),
        Command::Tcp(args) => runtime.block_on(crate::agent::run_tcp(args.into())),
        Command::Http(args) => runtime.block_on(crate::agent::run_http(args.into())),
        Command::Start(args) => runtime.block_on(start::run(args)),
        Command::Replay(args) => runtime.block_on(crate::replay::run(args.into())),
        Command::Audit(args) => runtime.block_on(crate::audit::run(args.into())),
        Command::Checkpoint(args) => runtime.block_on(crate::tlog::commands::checkpoint(
            &args.api.into(),
            args.save.as_deref(),
        )),
        Command::VerifyProof(args) => crate::tlog::commands::verify_proof(
            &args.bundle,
            &args.public_key,
            args.checkpoint.as_deref(),
        ),
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(cmd) => bench::run(cmd, &runtime),
        Command::Tokens { cmd, api } => runtime.block_on(crate::client::run(
            ClientCommand::Tokens(cmd.into()),
            api.into(),
        )),
        Command::Tunnels { cmd, api } => runtime.block_on(crate::client::run(
            ClientCommand::Tunnels(cmd.into()),
            api.into(),
        )),
        Command::Usage { days, api } => runtime.block_on(crate::client::run(
            ClientCommand::Usage { days },
            api.into(),
        )),
        Command::Requests {
            cmd,
            limit,
            follow,
            api,
        } => runtime.block_on(crate::client::run(
            ClientCommand::Requests {
                cmd: cmd.map(Into::into),
                limit,
                follow,
            },
            api.into(),
        )),
        Command::Domains { cmd, api } => runtime.block_on(crate::client::run(
            ClientCommand::Domains(cmd.into()),
            api.into(),
        )),
    }
}
