//! Helpers shared by the end-to-end tests: the real binary and real data dirs.
#![allow(dead_code)]

pub mod api;
pub mod cluster;
pub mod core;
pub mod dns;
pub mod http;
pub mod inspect;
pub mod oidc;
pub mod tlog;
pub mod tunnel;
pub mod turns;

pub use beamd_testkit::{nats, tools};

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::Result;
use beamd::data_dir::DataDir;
use beamd::projections::LogSummary;
use beamd_events::log::SledLog;
use beamd_events::vocabulary::{NodeHeartbeat, TrafficRecorded};
use beamd_events::{Append, Durability, Event, EventLog, ExpectedVersion, ManualClock, StreamId};
use beamd_snapshots::{Fold, Snapshot, SnapshotStore};

/// A port on 127.0.0.1 that refuses connections: bound and never listening,
/// so that no other test (all share this process and the machine's ports)
/// can start listening on it while it is held.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    /// Its address.
    pub addr: std::net::SocketAddr,
}

impl ClosedPort {
    /// Binds a port of the system's choosing.
    pub fn bind() -> Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        Ok(Self {
            _socket: socket,
            addr,
        })
    }
}

/// Runs the real `beamd` binary.
pub fn beamd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args(args)
        .env("BEAMD_LOG", "warn")
        .output()
        .expect("the beamd binary runs")
}

/// Text of stdout / stderr.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Event `i` of a sample log over three streams: traffic on two tunnels,
/// heartbeats of a node.
pub fn sample_event(i: u64) -> Result<(StreamId, Event)> {
    let stream = StreamId::new(["tun_a", "tun_b", "node_x"][(i % 3) as usize])?;
    let event: Event = if i % 3 == 2 {
        NodeHeartbeat {}.into()
    } else {
        TrafficRecorded {
            bytes_in: i,
            bytes_out: 2 * i,
            ..Default::default()
        }
        .into()
    };
    Ok((stream, event))
}

/// Writes `n` events over three streams into a data dir, and snapshots the
/// log summary after each seq in `snapshot_at`.
pub async fn populate(dir: &Path, n: u64, snapshot_at: &[u64]) -> Result<()> {
    let data = DataDir::create(dir)?;
    let (log, _) = SledLog::open(
        data.log_store()?,
        Arc::new(ManualClock::new(1_764_000_000_000)),
        Durability::Always,
    )?;
    let snapshots = data.snapshots()?;
    let mut summary = LogSummary::default();
    for i in 0..n {
        let (stream, event) = sample_event(i)?;
        for env in log
            .append(Append::new(stream, ExpectedVersion::Any, vec![event]))
            .await?
        {
            summary.apply(&env);
            if snapshot_at.contains(&env.seq) {
                snapshots.save(&Snapshot::new(
                    LogSummary::KIND,
                    "all",
                    env.seq,
                    0,
                    &summary,
                )?)?;
            }
        }
    }
    snapshots.flush()?;
    log.close();
    Ok(())
}

/// Every file under `dir` holds none of `needle`.
pub fn nowhere(dir: &std::path::Path, needle: &[u8]) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            nowhere(&path, needle)?;
        } else {
            let bytes = std::fs::read(&path)?;
            anyhow::ensure!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the secret",
                path.display()
            );
        }
    }
    Ok(())
}

/// Each request that events printed by `beamd replay` captured, as
/// `{"type": "RequestCaptured", "event": {…}}`: one per `RequestCaptured`,
/// one per request of a window's `RequestsCaptured`.
pub fn captured_requests(
    events: impl IntoIterator<Item = serde_json::Value>,
) -> Vec<serde_json::Value> {
    let one = |r: serde_json::Value| serde_json::json!({"type": "RequestCaptured", "event": r});
    let mut out = Vec::new();
    for mut e in events {
        match e["type"].as_str() {
            Some("RequestCaptured") => out.push(e),
            Some("RequestsCaptured") => {
                if let serde_json::Value::Array(rs) = e["event"]["requests"].take() {
                    out.extend(rs.into_iter().map(one));
                }
            }
            _ => {}
        }
    }
    out
}
