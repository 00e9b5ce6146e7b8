//! Byte limits cut a live tunnel off with a clear message to the agent: the
//! key's `limitBytes`, and the plan's monthly bandwidth.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use beamd::actors::{Core, CoreConfig};
use beamd::data_dir::DataDir;
use beamd::domain::{CreateTenant, Scope, Scopes};
use beamd_events::log::SledLog;
use beamd_events::vocabulary::{KeyKind, Plan};
use beamd_events::{Durability, SystemClock};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge};

const MIB: u64 = 1024 * 1024;

/// A tenant whose plan allows `bandwidth` bytes a month, with one key limited
/// to `limit` bytes and one unlimited key; returns their tokens.
async fn prepare(dir: &std::path::Path, bandwidth: u64, limit: u64) -> Result<(String, String)> {
    let data = DataDir::create(dir)?;
    let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
    let core = Core::start(CoreConfig::new(
        Arc::new(log),
        Arc::new(data.snapshots()?),
        Arc::new(SystemClock),
    ))
    .await?;
    let plan = Plan {
        name: "small".into(),
        bandwidth_bytes_per_month: Some(bandwidth),
        ..Plan::default()
    };
    let tenant = core
        .create_tenant(CreateTenant {
            slug: "small".into(),
            name: "Small".into(),
            plan,
            tunnel_base: "localhost".into(),
        })
        .await?;
    let (limited, s1) = core
        .issue_key(
            &tenant.id,
            "limited",
            KeyKind::Agent,
            Scopes::default(),
            Some(limit),
            Scope::Admin,
        )
        .await?;
    let (free, s2) = core
        .issue_key(
            &tenant.id,
            "free",
            KeyKind::Agent,
            Scopes::default(),
            None,
            Scope::Admin,
        )
        .await?;
    core.shutdown().await?;
    Ok((
        format!("{}.{}", limited.id, s1.expose()),
        format!("{}.{}", free.id, s2.expose()),
    ))
}

async fn cut_off(agent: &mut common::tunnel::Agent) -> Result<String> {
    for _ in 0..200 {
        if let Some(status) = agent.proc.child.try_wait()? {
            ensure!(!status.success(), "a cut-off agent exits non-zero");
            let lines = agent
                .proc
                .stderr
                .lock()
                .map_err(|_| anyhow::anyhow!("lock"))?
                .clone();
            return lines
                .into_iter()
                .find(|l| l.contains("refused"))
                .context("no refusal message");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the agent was not cut off")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_plan_limits_cut_tunnels_off() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (limited, free) = prepare(dir.path(), 6 * MIB, MIB).await?;
    let echo = echo_server().await?;
    let mut edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;

    edge.token = Some(limited);
    let mut agent = start_agent(&edge, "tcp", echo, &[])?;
    round_trip(agent.public, pattern(1, MIB as usize)).await?;
    let why = cut_off(&mut agent).await?;
    ensure!(
        why.contains("limit_exceeded") && why.contains("limitBytes"),
        "{why}"
    );

    edge.token = Some(free);
    let mut agent = start_agent(&edge, "tcp", echo, &[])?;
    for i in 0..3 {
        // The connection may be cut while the last chunk is in flight.
        let _ = round_trip(agent.public, pattern(i, 2 * MIB as usize)).await;
    }
    let why = cut_off(&mut agent).await?;
    ensure!(
        why.contains("limit_exceeded") && why.contains("bandwidthBytes"),
        "{why}"
    );
    Ok(())
}
