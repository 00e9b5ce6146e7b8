//! The core's actors on the real sled log: supervision, passivation, and
//! the domain's rules through the actors.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beamd::actors::{ask, CoreError, SupervisorMsg, Timings};
use beamd::domain::{DomainError, KeyCommand, Scope, Scopes};
use beamd_events::vocabulary::{KeyKind, TrafficRecorded};
use common::core::{fast, http, start, tcp, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_actor_is_restarted_and_rehydrates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let r = start(dir.path(), fast(), 1_000).await?;
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
    let t = r.core.open_tunnel(&key.id, tcp(23_000)).await?;
    let before = r
        .core
        .record_traffic(
            &t.id,
            TrafficRecorded {
                bytes_in: 9,
                bytes_out: 9,
                connections: 1,
                requests: 0,
                window_ms: 50,
                member: None,
                key: None,
                datagrams: 0,
            },
        )
        .await?;
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
        .issue_key(
            &ten,
            "k",
            KeyKind::Agent,
            Scopes::default(),
            Some(1_000),
            Scope::Admin,
        )
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
        .issue_key(
            &ten,
            "other",
            KeyKind::Agent,
            Scopes::default(),
            None,
            Scope::Admin,
        )
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
        .record_traffic(
            &t.id,
            TrafficRecorded {
                bytes_in: 600,
                bytes_out: 400,
                connections: 1,
                requests: 0,
                window_ms: 50,
                member: None,
                key: None,
                datagrams: 0,
            },
        )
        .await?;
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
    r.core
        .key_command(&key2.id, KeyCommand::Revoke { by: Scope::Admin })
        .await?;
    let err = r.core.open_tunnel(&key2.id, tcp(25_002)).await.unwrap_err();
    assert!(
        matches!(err, CoreError::Domain(DomainError::Unauthorized(_))),
        "{err}"
    );
    Ok(())
}
