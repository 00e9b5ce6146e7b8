//! `beamd replay --log nats://…` and `beamd audit --log nats://…` read an
//! event log kept on NATS JetStream (a real nats-server on 127.0.0.1) the way
//! they read a data dir; bad addresses are one line on stderr and exit 1.

use crate::common;

use std::sync::Arc;

use anyhow::{ensure, Result};
use beamd_events::log::{GroupCommitLog, JetStreamConfig, JetStreamStore};
use beamd_events::{Append, Durability, EventLog, ExpectedVersion, ManualClock};
use common::nats::NatsServer;
use common::{beamd, sample_event, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_audit_read_a_jetstream_log() -> Result<()> {
    let server = NatsServer::start();
    let url = format!("nats://{}", server.addr);
    let store = JetStreamStore::open(&JetStreamConfig::parse(&url)?).await?;
    let (log, _) = GroupCommitLog::open(
        store,
        Arc::new(ManualClock::new(1_764_000_000_000)),
        Durability::Always,
    )?;
    for i in 0..30u64 {
        let (stream, event) = sample_event(i)?;
        log.append(Append::new(stream, ExpectedVersion::Any, vec![event]))
            .await?;
    }
    let head = log.head();
    log.close();

    let url2 = url.clone();
    let replayed =
        tokio::task::spawn_blocking(move || beamd(&["replay", "--log", &url2, "--format", "json"]))
            .await?;
    ensure!(replayed.status.success(), "{}", text(&replayed.stderr));
    let lines: Vec<serde_json::Value> = text(&replayed.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(lines.len() == 30, "replayed {} events", lines.len());
    ensure!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| l["seq"] == i as u64 + 1));

    let url2 = url.clone();
    let audited = tokio::task::spawn_blocking(move || beamd(&["audit", "--log", &url2])).await?;
    let out = text(&audited.stdout);
    ensure!(audited.status.success(), "{}", text(&audited.stderr));
    ensure!(
        out.contains("audit ok: 30 events, 3 streams")
            && out.contains(&beamd_events::envelope::hex(&head.hash)),
        "{out}"
    );

    // Bad addresses: one line on stderr, exit 1.
    for bad in ["http://127.0.0.1:4222", "nats://127.0.0.1:1"] {
        let bad = bad.to_string();
        let refused = tokio::task::spawn_blocking(move || beamd(&["audit", "--log", &bad])).await?;
        let err = text(&refused.stderr);
        ensure!(!refused.status.success(), "audit of a bad log succeeded");
        ensure!(err.trim().lines().count() == 1, "one line on stderr: {err}");
    }
    Ok(())
}
