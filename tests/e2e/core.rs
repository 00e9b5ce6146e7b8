//! The core on the real sled log: a restart that changes nothing,
//! projections against a full replay, and traffic windows recorded.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use beamd::actors::Timings;
use beamd::domain::{Scope, Scopes, TunnelCommand, TunnelStatus};
use beamd::projections::{InspectorProjection, LogSummary, StatusProjection, UsageProjection};
use beamd_events::vocabulary::{KeyKind, RequestCaptured, TrafficRecorded};
use beamd_snapshots::Fold;
use common::core::{fast, http, start, tcp, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_actor_and_projection() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = start(dir.path(), fast(), 7).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _secret) = r
        .core
        .issue_key(
            &ten,
            "laptop",
            KeyKind::Agent,
            Scopes::default(),
            None,
            Scope::Admin,
        )
        .await?;
    let a = r.core.open_tunnel(&key.id, tcp(20_001)).await?;
    let b = r.core.open_tunnel(&key.id, http("web")).await?;
    for _ in 0..10 {
        r.core
            .record_traffic(
                &a.id,
                TrafficRecorded {
                    bytes_in: 100,
                    bytes_out: 1_000,
                    connections: 1,
                    requests: 0,
                    window_ms: 50,
                    member: None,
                    key: None,
                    datagrams: 0,
                },
            )
            .await?;
    }
    let capture = RequestCaptured {
        method: "GET".into(),
        path: "/x".into(),
        status: 200,
        ..Default::default()
    };
    r.core
        .tunnel_command(&b.id, TunnelCommand::CaptureRequests(vec![capture].into()))
        .await?;
    let a_before = r.core.tunnel(&a.id).await?;
    r.core
        .tunnel_command(
            &b.id,
            TunnelCommand::GoOffline {
                reason: "agent left".into(),
                node: None,
            },
        )
        .await?;
    let head = r.core.log().head().seq;
    r.core.projections().wait_for(head).await?;
    let projections_before = r.core.queries().snapshot();
    let key_before = r.core.key(&key.id).await?;
    let b_before = r.core.tunnel(&b.id).await?;
    let dir_before = r.core.directory().await?;
    r.core.shutdown().await?;
    drop(r);

    let r = start(dir.path(), fast(), 7).await?;
    assert_eq!(
        r.core.log().head().seq,
        head,
        "a clean stop and start records nothing new"
    );
    assert_eq!(r.core.tunnel(&a.id).await?, a_before);
    assert_eq!(r.core.tunnel(&b.id).await?, b_before);
    assert_eq!(r.core.key(&key.id).await?, key_before);
    assert_eq!(r.core.directory().await?, dir_before);
    assert_eq!(r.core.queries().snapshot(), projections_before);
    let usage = &projections_before.usage;
    assert_eq!(usage.tenant(&ten).total.bytes(), 11_000);
    assert_eq!(usage.key(&key.id).bytes(), 11_000);
    let a_traffic = usage.tunnel(&a.id);
    assert_eq!(
        (
            a_traffic.bytes_in,
            a_traffic.bytes_out,
            a_traffic.connections
        ),
        (1_000, 10_000, 10)
    );
    assert_eq!(projections_before.inspector.recent(&ten, 10).len(), 1);
    // The name held by the offline tunnel comes back to its key.
    let again = r.core.open_tunnel(&key.id, http("web")).await?;
    assert_eq!(
        (again.id.as_str(), again.status),
        (b.id.as_str(), TunnelStatus::Online)
    );
    r.core.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_equal_a_full_replay() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = start(dir.path(), fast(), 5).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _) = r
        .core
        .issue_key(
            &ten,
            "k",
            KeyKind::Agent,
            Scopes::default(),
            None,
            Scope::Admin,
        )
        .await?;
    for port in 0..6u16 {
        let t = r.core.open_tunnel(&key.id, tcp(21_000 + port)).await?;
        r.core
            .record_traffic(
                &t.id,
                TrafficRecorded {
                    bytes_in: u64::from(port),
                    bytes_out: 1,
                    connections: 1,
                    requests: 0,
                    window_ms: 50,
                    member: None,
                    key: None,
                    datagrams: 0,
                },
            )
            .await?;
        if port % 2 == 0 {
            r.core.tunnel_command(&t.id, TunnelCommand::Release).await?;
        }
    }
    let head = r.core.log().head().seq;
    r.core.projections().wait_for(head).await?;
    let live = r.core.queries().snapshot();
    let mut replay = (
        LogSummary::default(),
        UsageProjection::default(),
        InspectorProjection::default(),
        StatusProjection::default(),
    );
    for env in r.core.log().read_from(1, usize::MAX).await? {
        replay.0.apply(&env);
        replay.1.apply(&env);
        replay.2.apply(&env);
        replay.3.apply(&env);
    }
    assert_eq!(live.summary, replay.0);
    assert_eq!(live.usage, replay.1);
    assert_eq!(live.inspector, replay.2);
    assert_eq!(live.status, replay.3);
    assert_eq!(live.status.counts.online_tunnels, 3);
    r.core.shutdown().await?;
    drop(r);
    // The snapshots written on the way agree with the log: audit says so.
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_is_one_event_recorded_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let timings = Timings {
        idle: Duration::from_secs(60),
    };
    let r = start(dir.path(), timings, 1_000).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _) = r
        .core
        .issue_key(
            &ten,
            "k",
            KeyKind::Agent,
            Scopes::default(),
            None,
            Scope::Admin,
        )
        .await?;
    let t = r.core.open_tunnel(&key.id, tcp(22_000)).await?;
    let before = r.core.log().head().seq;
    let window = TrafficRecorded {
        bytes_in: 1_500,
        bytes_out: 2_000,
        connections: 0,
        requests: 500,
        window_ms: 1_000,
        member: None,
        key: None,
        datagrams: 0,
    };
    r.core.record_traffic(&t.id, window).await?;
    assert_eq!(
        r.core.log().head().seq,
        before + 1,
        "the window is one TrafficRecorded, durable when the call returns"
    );
    r.core
        .record_traffic(&t.id, TrafficRecorded::default())
        .await?;
    assert_eq!(
        r.core.log().head().seq,
        before + 1,
        "an empty window records nothing"
    );
    r.core
        .projections()
        .wait_for(r.core.log().head().seq)
        .await?;
    let totals = r.core.queries().tunnel_totals(&t.id);
    assert_eq!(
        (totals.bytes_in, totals.bytes_out, totals.requests),
        (1_500, 2_000, 500)
    );
    r.core.shutdown().await?;
    Ok(())
}
