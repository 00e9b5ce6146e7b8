//! `kill -9` of the whole edge at random moments while 8 writers issue API
//! commands and traffic flows through a tunnel. Each writer keeps the id of
//! every command the edge acknowledged (201). Snapshots are taken every 40
//! events, so kills also land during snapshot writes. Afterwards every
//! acknowledged command is there, `beamd audit` is clean (chain, seqs, every
//! snapshot equal to the fold of the log up to its seq) and the agent is
//! back on its port.
//!
//! CI kills 8 times; the soak is `BEAMD_KILLS=200 cargo test --release --test
//! e2e kill_edge::` (`BEAMD_KILL_SEED` repeats a run's moments), and
//! `BEAMD_SNAPSHOT_EVERY=1` snapshots after every event.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::{token_ids, Api};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};
use common::{beamd, text};

const WRITERS: usize = 8;
/// Snapshots every 40 events (the edge's default is 10,000), so that kills
/// land in the middle of snapshot writes too; `BEAMD_SNAPSHOT_EVERY=1` for
/// a run where nearly every kill does.
fn snapshot_every() -> String {
    env_or("BEAMD_SNAPSHOT_EVERY", 40).to_string()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port free right now, for the agent listener to keep across restarts.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_no_acknowledged_command() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let kills = env_or("BEAMD_KILLS", 8);
    let every = snapshot_every();
    let seed = env_or("BEAMD_KILL_SEED", fastrand::u64(..));
    eprintln!("kill_edge: {kills} kills, BEAMD_KILL_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir()?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let local = echo_server().await?;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut agent = None;
    let mut carried = 0u32;
    for round in 0..kills {
        let edge = start_edge(dir.path(), "tcp", &listen, &["--snapshot-every", &every])?;
        if agent.is_none() {
            agent = Some(start_agent(&edge, "tcp", local, &[])?);
        }
        let public = agent.as_ref().context("agent")?.public;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (admin, acked, stop) =
                (Api::new(edge.api, ADMIN_TOKEN), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(r#"{{"label":"r{round}w{w}n{n}"}}"#);
                    n += 1;
                    match admin.send("POST", "/api/v1/tokens", Some(&body)).await {
                        Ok(a) if a.status == 201 => {
                            if let Some(id) = a.body["id"].as_str() {
                                acked.lock().unwrap().push(id.to_string());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return 0, // the edge is gone
                    }
                }
                0
            }));
        }
        let traffic = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut ok = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if round_trip(public, pattern(1, 16 * 1024)).await.is_ok() {
                        ok += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                ok
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1_500))).await;
        drop(edge); // SIGKILL, then wait for the process
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await?;
        }
        carried += traffic.await?;
    }

    let acked = acked.lock().unwrap().clone();
    ensure!(
        acked.len() > kills as usize,
        "only {} acknowledged commands",
        acked.len()
    );
    let edge = start_edge(dir.path(), "tcp", &listen, &["--snapshot-every", &every])?;
    let stored = token_ids(&Api::new(edge.api, ADMIN_TOKEN)).await?;
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    eprintln!(
        "kill_edge: {kills} kills, {} commands acknowledged, {} lost, {carried} round trips carried",
        acked.len(),
        lost.len()
    );
    ensure!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    let agent = agent.context("agent")?;
    // The agent reconnects on its own, after its backoff (at most a few seconds here).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Err(e) = round_trip(agent.public, pattern(2, 4096)).await {
        ensure!(
            std::time::Instant::now() < deadline,
            "the agent is not back on its port within 15 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(agent);
    drop(edge);
    let audit = beamd(&["audit", "--data-dir", dir.path().to_str().context("dir")?]);
    ensure!(
        audit.status.success(),
        "audit after {kills} kills: {}{}",
        text(&audit.stdout),
        text(&audit.stderr)
    );
    Ok(())
}
