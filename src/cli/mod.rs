//! The command line: one subcommand per job, parsed by clap into the plain
//! settings the commands run with. Nothing below it sees a flag.

mod agent;
mod agent_file;
mod bench;
mod client;
mod edge;
mod edge_file;
mod file;
mod log;
mod simulate;
mod start;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

pub use agent::{AgentConnArgs, AgentTransportArg, HttpArgs, TcpArgs, UdpArgs};
pub use bench::BenchCommand;
pub use client::{ApiArgs, DomainsArgs, RequestsArgs, TokensArgs, TunnelsArgs};
pub use edge::{EdgeArgs, H2Args, InspectArgs, PortRange, TlogArgs, TransportArg};
pub use log::{
    AuditArgs, CheckpointArgs, ReplayArgs, ReplayFormatArg, VerifyProofArgs, WitnessArgs,
};
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
    /// Expose a local UDP port through an edge (each client address a flow).
    Udp(UdpArgs),
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
    /// Witness other edges' transparency logs: cosign each checkpoint that
    /// consistently extends the last one cosigned (C2SP tlog-witness).
    Witness(WitnessArgs),
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

/// Parses the process's command line, with `beamd edge --config FILE`'s
/// keys in it; prints the effective configuration and exits for
/// `--print-config`. A bad file or flag: one line on stderr, exit 2.
pub fn parse() -> Parsed {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("beamd: error: {e}");
        std::process::exit(2)
    };
    let parsed = match parse_from(argv) {
        Ok(parsed) => parsed,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::File(e)) => fail(&e),
    };
    if let Command::Edge(args) = &parsed.cli.command {
        if args.print_config {
            match print_config(args, &parsed) {
                Ok(text) => {
                    print!("{text}");
                    std::process::exit(0);
                }
                Err(e) => fail(&e),
            }
        }
    }
    parsed
}

/// A parsed command line and what it was parsed from.
pub struct Parsed {
    /// The command.
    pub cli: Cli,
    argv: Vec<std::ffi::OsString>,
    matches: clap::ArgMatches,
    from_file: std::collections::HashSet<String>,
}

/// Why a command line (with its file) does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The config file.
    #[error(transparent)]
    File(#[from] file::FileError),
    /// A flag, or a combination of them.
    #[error("{}", one_line_clap(.0))]
    Clap(#[from] clap::Error),
}

/// clap's message without its usage lines, on one line.
fn one_line_clap(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let line = lines.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// Parses `argv` with an edge file's keys in it.
pub fn parse_from(argv: Vec<std::ffi::OsString>) -> Result<Parsed, ParseError> {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command();
    let merged = edge_file::merge(&command, argv.clone())?;
    let matches = command.try_get_matches_from(merged.argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Parsed {
        cli,
        argv,
        matches,
        from_file: merged.from_file,
    })
}

/// SIGHUP for `beamd edge --config`: the command line and the file read
/// again; what may change live is handed to the edge, anything else is
/// refused by name and the running configuration kept.
async fn edge_reloads(
    argv: Vec<std::ffi::OsString>,
    running: clap::ArgMatches,
) -> Result<tokio::sync::mpsc::UnboundedReceiver<crate::node::NodeSettings>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let keep = "the running configuration stays";
        while hangups.recv().await.is_some() {
            let read = parse_from(argv.clone())
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    use clap::CommandFactory;
                    let fixed = edge_file::fixed_changes(&Cli::command(), &running, &p.matches);
                    if !fixed.is_empty() {
                        return Err(format!(
                            "{} cannot change while the edge runs (restart to apply)",
                            fixed.join(", ")
                        ));
                    }
                    match p.cli.command {
                        Command::Edge(args) => {
                            crate::node::NodeSettings::try_from(*args).map_err(|e| e.to_string())
                        }
                        _ => Err("not beamd edge".into()),
                    }
                });
            match read {
                Ok(settings) => {
                    if tx.send(settings).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("beamd edge: reload refused ({keep}): {e}"),
            }
        }
    });
    Ok(rx)
}

/// `beamd edge --print-config`: the settings checked, then printed.
fn print_config(args: &EdgeArgs, parsed: &Parsed) -> Result<String> {
    use clap::CommandFactory;
    crate::node::NodeSettings::try_from(args.clone())?;
    let command = Cli::command();
    let edge = command.find_subcommand("edge").context("beamd edge")?;
    let matches = parsed
        .matches
        .subcommand_matches("edge")
        .context("beamd edge")?;
    Ok(edge_file::print_config(edge, matches, &parsed.from_file))
}

/// Runs a parsed command line.
pub fn run(parsed: Parsed) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Parsed {
        cli, argv, matches, ..
    } = parsed;
    match cli.command {
        Command::Edge(args) => {
            let reloads = match &args.config {
                Some(_) => Some(runtime.block_on(edge_reloads(argv, matches))?),
                None => None,
            };
            runtime.block_on(crate::node::run((*args).try_into()?, reloads))
        }
        Command::Tcp(args) => runtime.block_on(crate::agent::run_tcp(args.into())),
        Command::Http(args) => runtime.block_on(crate::agent::run_http(args.into())),
        Command::Udp(args) => runtime.block_on(crate::agent::run_udp(args.into())),
        Command::Start(args) => runtime.block_on(start::run(args)),
        Command::Replay(args) => runtime.block_on(crate::replay::run(args.into())),
        Command::Audit(args) => runtime.block_on(crate::audit::run(args.try_into()?)),
        Command::Witness(args) => runtime.block_on(crate::witness::run(args.into())),
        Command::Checkpoint(args) => {
            let quorum = args.witnesses.quorum()?;
            runtime.block_on(crate::tlog::commands::checkpoint(
                &args.api.into(),
                args.save.as_deref(),
                &quorum,
            ))
        }
        Command::VerifyProof(args) => crate::tlog::commands::verify_proof(
            &args.bundle,
            &args.public_key,
            args.checkpoint.as_deref(),
            &args.witnesses.quorum()?,
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
