//! `beamd start`: the tunnels of a config file over one connection, reloaded
//! on SIGHUP; a pool member whose health check fails is closed until it
//! passes again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::agent_file::{default_path, fixed_keys_changed, load};
use crate::agent::{watch_health, AgentConn, HealthCheck};
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
    let (reloads, read) = mpsc::unbounded_channel();
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let running = file.conn.clone();
    let names = args.names;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Some(file) = reread(&path, &names, &running) {
                if reloads.send(file).is_err() {
                    return;
                }
            }
        }
    });
    let wanted = healthy_only(file.tunnels.clone(), file.checks, read);
    crate::agent::run_start(file.conn, file.tunnels, wanted).await
}

/// The tunnels to serve: the file's (as read at each reload) less the pool
/// members whose health check fails now; sent on every change of either.
fn healthy_only(
    tunnels: Vec<TunnelRequest>,
    checks: BTreeMap<String, HealthCheck>,
    mut reloads: mpsc::UnboundedReceiver<(Vec<TunnelRequest>, BTreeMap<String, HealthCheck>)>,
) -> mpsc::UnboundedReceiver<Vec<TunnelRequest>> {
    let (out, wanted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut tunnels, mut checks) = (tunnels, checks);
        // A reload starts the checks afresh: a generation tells old ones apart.
        let (health, mut changes) = mpsc::unbounded_channel::<(u64, String, bool)>();
        let mut generation = 0u64;
        let mut sick: BTreeSet<String> = BTreeSet::new();
        let watch =
            |generation: u64, tunnels: &[TunnelRequest], checks: &BTreeMap<String, HealthCheck>| {
                for t in tunnels {
                    let Some((tag, check)) =
                        t.tag.as_ref().and_then(|tag| Some((tag, checks.get(tag)?)))
                    else {
                        continue;
                    };
                    let who = format!("beamd start: {tag}");
                    let mut states = watch_health(t.local_addr.clone(), check.clone(), who);
                    let (health, tag) = (health.clone(), tag.clone());
                    tokio::spawn(async move {
                        while let Some(healthy) = states.recv().await {
                            if health.send((generation, tag.clone(), healthy)).is_err() {
                                return;
                            }
                        }
                    });
                }
            };
        watch(generation, &tunnels, &checks);
        loop {
            tokio::select! {
                read = reloads.recv() => {
                    let Some((t, c)) = read else { return };
                    (tunnels, checks) = (t, c);
                    generation += 1;
                    sick.clear();
                    watch(generation, &tunnels, &checks);
                }
                Some((g, tag, healthy)) = changes.recv() => {
                    if g != generation {
                        continue;
                    }
                    if healthy { sick.remove(&tag); } else { sick.insert(tag); }
                }
            }
            let serving: Vec<TunnelRequest> = (tunnels.iter())
                .filter(|t| !t.tag.as_ref().is_some_and(|tag| sick.contains(tag)))
                .cloned()
                .collect();
            if out.send(serving).is_err() {
                return;
            }
        }
    });
    wanted
}

/// The file read again on SIGHUP: its tunnels and their health checks, or
/// `None` (said on stderr) when it is refused.
fn reread(
    path: &Path,
    names: &[String],
    running: &AgentConn,
) -> Option<(Vec<TunnelRequest>, BTreeMap<String, HealthCheck>)> {
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
    Some((file.tunnels, file.checks))
}
