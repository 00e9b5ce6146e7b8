//! `beamd start`: the tunnels of a config file over one connection, reloaded
//! on SIGHUP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::agent_file::{default_path, fixed_keys_changed, load};
use crate::agent::AgentConn;
use crate::protocol::TunnelRequest;

/// Options of `beamd start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The config file: the edge, the token and one [tunnels.NAME] table per
    /// tunnel (see `beamd start` in the README). Default:
    /// $XDG_CONFIG_HOME/beamd/beamd.toml, else ~/.config/beamd/beamd.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run only these tunnels of the file (default: all of them).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `beamd start`. SIGHUP reads the file again: tunnels added, removed or
/// changed are opened and closed over the same connection while the others
/// serve on; a file that does not parse, or that changes how the edge is
/// reached, is refused with the reason and the running tunnels kept.
pub async fn run(args: StartArgs) -> Result<ExitCode> {
    let path = match args.config {
        Some(path) => path,
        None => default_path().context("no --config and no HOME to find the default file in")?,
    };
    let file = load(&path, &args.names)?;
    let (reloads, wanted) = mpsc::unbounded_channel();
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let running = file.conn.clone();
    let names = args.names;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Some(tunnels) = reread(&path, &names, &running) {
                if reloads.send(tunnels).is_err() {
                    return;
                }
            }
        }
    });
    crate::agent::run_start(file.conn, file.tunnels, wanted).await
}

/// The file read again on SIGHUP: its tunnels, or `None` (said on stderr) when it is refused.
fn reread(path: &Path, names: &[String], running: &AgentConn) -> Option<Vec<TunnelRequest>> {
    let keep = "the running tunnels stay as they are";
    let file = match load(path, names) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("beamd start: reload refused ({keep}): {e}");
            return None;
        }
    };
    let fixed = fixed_keys_changed(running, &file.conn);
    if !fixed.is_empty() {
        eprintln!(
            "beamd start: reload refused ({keep}): {} cannot change without a restart",
            fixed.join(", ")
        );
        return None;
    }
    let tags: Vec<&str> = file
        .tunnels
        .iter()
        .filter_map(|t| t.tag.as_deref())
        .collect();
    eprintln!(
        "beamd start: reloaded {}: tunnels {}",
        path.display(),
        tags.join(", ")
    );
    Some(file.tunnels)
}
