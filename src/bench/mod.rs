//! `beamd bench …`: measurements run side by side with their baselines, so
//! that figures are ratios taken in one run on one machine.

mod api;
mod child;
pub mod core;
pub mod h2;
pub mod http;
pub mod idle;
pub mod log;
mod nats;
mod raw;
pub mod scale;
pub mod tunnel;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

/// `beamd bench …` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and replay throughput of the log against raw sled and write+fdatasync.
    Log(log::LogBenchArgs),
    /// Commands through the actors, traffic ingest, start-up with and without snapshots, usage queries.
    Core(core::CoreBenchArgs),
    /// TCP throughput and connection setup through each transport against a direct connection.
    Tunnel(tunnel::TunnelBenchArgs),
    /// HTTP requests/s and p50/p99 latency through an HTTP tunnel without, with and with full capture, against direct.
    Http(http::HttpBenchArgs),
    /// HTTP/2 requests/s and p50/p99 latency by h2load through an HTTP tunnel against direct; needs h2load.
    H2(h2::H2BenchArgs),
    /// Resident memory of the edge and the agent with many idle tunnels, then many open connections.
    Idle(idle::IdleBenchArgs),
    /// events/s and commands/s on sled against NATS JetStream (3 servers, replicas 3) with 1 and 3 edges; needs nats-server.
    Scale(scale::ScaleBenchArgs),
    /// The agents of `bench idle`, in their own process.
    #[command(hide = true)]
    IdleAgents(idle::IdleAgentsArgs),
    /// The echo service of `bench idle`, holding every connection open.
    #[command(hide = true)]
    Hold,
}

/// Runs one `beamd bench …` command on `runtime`.
pub fn run(cmd: BenchCommand, runtime: &tokio::runtime::Runtime) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Log(args) => runtime.block_on(log::run(args)),
        BenchCommand::Core(args) => runtime.block_on(core::run(args)),
        BenchCommand::Tunnel(args) => runtime.block_on(tunnel::run(args)),
        BenchCommand::Http(args) => runtime.block_on(http::run(args)),
        BenchCommand::H2(args) => runtime.block_on(h2::run(args)),
        BenchCommand::Idle(args) => runtime.block_on(idle::run(args)),
        BenchCommand::Scale(args) => runtime.block_on(scale::run(args)),
        BenchCommand::IdleAgents(args) => runtime.block_on(idle::agents(args)),
        BenchCommand::Hold => runtime.block_on(idle::hold()),
    }
}
