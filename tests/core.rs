//! The core on the real sled log: actors, supervision, passivation,
//! traffic aggregation, projections, and a restart that changes nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beamd::actors::{ask, Core, CoreConfig, CoreError, SupervisorMsg, Timings, TrafficDelta};
use beamd::data_dir::DataDir;
use beamd::domain::{
    CreateTenant, DomainError, KeyCommand, OpenTunnel, PortRequest, TunnelCommand, TunnelStatus,
};
use beamd::projections::{InspectorProjection, LogSummary, StatusProjection, UsageProjection};
use beamd_events::log::SledLog;
use beamd_events::vocabulary::{KeyKind, Plan, RequestCaptured, TransportKind, TunnelProtocol};
use beamd_events::{Durability, SystemClock};
use beamd_snapshots::{Fold, SnapshotPolicy};

struct Running {
    core: Core,
    _data: DataDir,
}

async fn start(dir: &std::path::Path, timings: Timings, every: u64) -> Result<Running> {
    let data = DataDir::create(dir)?;
    let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
    let mut config = CoreConfig::new(
        Arc::new(log),
        Arc::new(data.snapshots()?),
        Arc::new(SystemClock),
    );
    config.index = Some(beamd::projections::InspectorIndex::open(data.db())?);
    config.timings = timings;
    config.policy = SnapshotPolicy {
        every_events: every,
        on_shutdown: true,
    };
    Ok(Running {
        core: Core::start(config).await?,
        _data: data,
    })
}

fn plan() -> Plan {
    Plan {
        name: "pro".into(),
        max_tunnels: Some(10),
        max_domains: Some(2),
        bandwidth_bytes_per_month: None,
    }
}

fn tcp(port: u16) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Tcp,
        name: None,
        port: PortRequest::Exact(port),
        transport: TransportKind::Quic,
        node: "node_a".into(),
        local_addr: "127.0.0.1:5432".into(),
    }
}

fn http(name: &str) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Http,
        name: Some(name.into()),
        port: PortRequest::None,
        ..tcp(0)
    }
}

fn fast() -> Timings {
    Timings {
        idle: Duration::from_secs(60),
        flush_window: Duration::from_millis(50),
    }
}

async fn tenant(core: &Core, slug: &str) -> Result<String> {
    let t = core
        .create_tenant(CreateTenant {
            slug: slug.into(),
            name: slug.into(),
            plan: plan(),
            tunnel_base: format!("{slug}.localhost"),
        })
        .await?;
    Ok(t.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_actor_and_projection() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = start(dir.path(), fast(), 7).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _secret) = r
        .core
        .issue_key(&ten, "laptop", KeyKind::Agent, vec![], None)
        .await?;
    let a = r.core.open_tunnel(&key.id, tcp(20_001)).await?;
    let b = r.core.open_tunnel(&key.id, http("web")).await?;
    for _ in 0..10 {
        r.core
            .report_traffic(
                &a.id,
                TrafficDelta {
                    bytes_in: 100,
                    bytes_out: 1_000,
                    connections: 1,
                    requests: 0,
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
        .tunnel_command(&b.id, TunnelCommand::CaptureRequests(vec![capture]))
        .await?;
    let a_before = r.core.flush_tunnel(&a.id).await?;
    assert_eq!(
        (a_before.bytes_in, a_before.bytes_out, a_before.connections),
        (1_000, 10_000, 10)
    );
    r.core
        .tunnel_command(
            &b.id,
            TunnelCommand::GoOffline {
                reason: "agent left".into(),
            },
        )
        .await?;
    let head = r.core.log().head().seq;
    r.core.projections().wait_for(head).await?;
    let projections_before = r.core.projections().read().clone();
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
    assert_eq!(*r.core.projections().read(), projections_before);
    let usage = &projections_before.usage;
    assert_eq!(usage.tenant(&ten).total.bytes(), 11_000);
    assert_eq!(usage.key(&key.id).bytes(), 11_000);
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
        .issue_key(&ten, "k", KeyKind::Agent, vec![], None)
        .await?;
    for port in 0..6u16 {
        let t = r.core.open_tunnel(&key.id, tcp(21_000 + port)).await?;
        r.core
            .report_traffic(
                &t.id,
                TrafficDelta {
                    bytes_in: u64::from(port),
                    bytes_out: 1,
                    connections: 1,
                    requests: 0,
                },
            )
            .await?;
        r.core.flush_tunnel(&t.id).await?;
        if port % 2 == 0 {
            r.core.tunnel_command(&t.id, TunnelCommand::Release).await?;
        }
    }
    let head = r.core.log().head().seq;
    r.core.projections().wait_for(head).await?;
    let live = r.core.projections().read().clone();
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
async fn traffic_in_one_window_is_one_event() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let timings = Timings {
        idle: Duration::from_secs(60),
        flush_window: Duration::from_secs(3_600),
    };
    let r = start(dir.path(), timings, 1_000).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _) = r
        .core
        .issue_key(&ten, "k", KeyKind::Agent, vec![], None)
        .await?;
    let t = r.core.open_tunnel(&key.id, tcp(22_000)).await?;
    let before = r.core.log().head().seq;
    for _ in 0..500 {
        r.core
            .report_traffic(
                &t.id,
                TrafficDelta {
                    bytes_in: 3,
                    bytes_out: 4,
                    connections: 0,
                    requests: 1,
                },
            )
            .await?;
    }
    let flushed = r.core.flush_tunnel(&t.id).await?;
    assert_eq!(
        (flushed.bytes_in, flushed.bytes_out, flushed.requests),
        (1_500, 2_000, 500)
    );
    assert_eq!(
        r.core.log().head().seq,
        before + 1,
        "500 reports became one TrafficRecorded"
    );
    r.core.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_actor_is_restarted_and_rehydrates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = start(dir.path(), fast(), 1_000).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _) = r
        .core
        .issue_key(&ten, "k", KeyKind::Agent, vec![], None)
        .await?;
    let t = r.core.open_tunnel(&key.id, tcp(23_000)).await?;
    r.core
        .report_traffic(
            &t.id,
            TrafficDelta {
                bytes_in: 9,
                bytes_out: 9,
                connections: 1,
                requests: 0,
            },
        )
        .await?;
    let before = r.core.flush_tunnel(&t.id).await?;
    let stream = beamd_events::StreamId::new(t.id.clone())?;
    let actor = ask(r.core.tunnel_supervisor(), |reply| {
        SupervisorMsg::Get(stream.clone(), reply)
    })
    .await??;
    actor
        .cast(beamd::actors::EntityMsg::Crash)
        .map_err(|_| anyhow::anyhow!("cast"))?;
    let mut restarted = 0;
    for _ in 0..200 {
        restarted = ask(r.core.tunnel_supervisor(), SupervisorMsg::Restarts).await?;
        if restarted > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(restarted, 1);
    let again = ask(r.core.tunnel_supervisor(), |reply| {
        SupervisorMsg::Get(stream.clone(), reply)
    })
    .await??;
    assert_ne!(again.get_id(), actor.get_id(), "a new actor took over");
    assert_eq!(
        r.core.tunnel(&t.id).await?,
        before,
        "rehydrated from the log"
    );
    r.core.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_passivated_and_come_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let timings = Timings {
        idle: Duration::from_millis(100),
        flush_window: Duration::from_millis(50),
    };
    let r = start(dir.path(), timings, 1_000).await?;
    let ten = tenant(&r.core, "acme").await?;
    let (key, _) = r
        .core
        .issue_key(&ten, "k", KeyKind::Agent, vec![], None)
        .await?;
    let mut ids = Vec::new();
    for port in 0..10u16 {
        let id = r.core.open_tunnel(&key.id, tcp(24_000 + port)).await?.id;
        r.core.tunnel(&id).await?; // spawns (rehydrates) its actor
        ids.push(id);
    }
    let running = ask(r.core.tunnel_supervisor(), SupervisorMsg::Running)
        .await?
        .len();
    assert!(running > 0, "touched tunnels have live actors");
    let mut left = running;
    for _ in 0..300 {
        left = ask(r.core.tunnel_supervisor(), SupervisorMsg::Running)
            .await?
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "idle tunnel actors stopped");
    let t = r.core.tunnel(&ids[7]).await?;
    assert_eq!(
        t.port,
        Some(24_007),
        "a passivated actor rehydrates on demand"
    );
    r.core.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_hold_through_the_actors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = Arc::new(start(dir.path(), fast(), 1_000).await?);
    let ten = tenant(&r.core, "acme").await?;
    let (key, secret) = r
        .core
        .issue_key(&ten, "k", KeyKind::Agent, vec![], Some(1_000))
        .await?;
    assert_eq!(key.secret_hash, secret.hash());
    assert_eq!(format!("{secret:?}"), "Secret(MASKED)");
    assert_eq!(secret.expose().len(), 64, "256 bits from the OS, as hex");
    // Eight concurrent opens of one name: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (r, key) = (r.clone(), key.id.clone());
        tasks.push(tokio::spawn(async move {
            r.core.open_tunnel(&key, http("same")).await
        }));
    }
    let mut ok = 0;
    let (key2, _) = r
        .core
        .issue_key(&ten, "other", KeyKind::Agent, vec![], None)
        .await?;
    for t in tasks {
        match t.await? {
            Ok(_) => ok += 1,
            Err(e) => panic!("the same key resumes its own name, it does not fail: {e}"),
        }
    }
    assert_eq!(ok, 8);
    let held = r.core.directory().await?;
    assert_eq!(held.hosts.len(), 1, "one tunnel holds the name");
    let err = r
        .core
        .open_tunnel(&key2.id, http("same"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::Domain(DomainError::Conflict(_))),
        "{err}"
    );
    // The key's byte limit, from recorded traffic.
    let t = r.core.open_tunnel(&key.id, tcp(25_000)).await?;
    r.core
        .report_traffic(
            &t.id,
            TrafficDelta {
                bytes_in: 600,
                bytes_out: 400,
                connections: 1,
                requests: 0,
            },
        )
        .await?;
    r.core.flush_tunnel(&t.id).await?;
    r.core
        .projections()
        .wait_for(r.core.log().head().seq)
        .await?;
    let err = r.core.open_tunnel(&key.id, tcp(25_001)).await.unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Domain(DomainError::LimitExceeded {
                limit: "limitBytes",
                max: 1_000
            })
        ),
        "{err}"
    );
    // A revoked key opens nothing.
    r.core.key_command(&key2.id, KeyCommand::Revoke).await?;
    let err = r.core.open_tunnel(&key2.id, tcp(25_002)).await.unwrap_err();
    assert!(
        matches!(err, CoreError::Domain(DomainError::Unauthorized(_))),
        "{err}"
    );
    Ok(())
}
