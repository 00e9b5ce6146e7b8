//! The event-log contract, run against every backend (sled, memory, and
//! NATS JetStream on a real nats-server).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beamd_events::log::{Follower, GroupCommitLog, MemoryStore};
use beamd_events::{
    Append, Durability, EventLog, ExpectedVersion, Guard, LogError, ManualClock, GENESIS_HASH,
};
use common::*;

mod common;

async fn appends_number_and_chain<B: Backend>(mut b: B) -> Result<()> {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = open(&mut b, clock.clone());
    let a = stream("node_a");
    let first = log
        .append(Append::new(
            a.clone(),
            ExpectedVersion::NoStream,
            vec![heartbeat(), heartbeat()],
        ))
        .await?;
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        first.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(first[0].prev_hash, GENESIS_HASH);
    assert_eq!(first[1].prev_hash, first[0].hash);
    assert!(
        first.iter().all(|e| e.at == 1_000),
        "at comes from the injected clock"
    );
    clock.advance(5);
    let second = log
        .append(Append::new(
            stream("tun_b"),
            ExpectedVersion::Any,
            vec![traffic(3)],
        ))
        .await?;
    assert_eq!(
        (second[0].seq, second[0].version, second[0].at),
        (3, 1, 1_005)
    );
    assert_eq!(log.head().seq, 3);
    assert_eq!(log.head().hash, second[0].hash);
    let all = log.read_from(1, 100).await?;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].event, traffic(3));
    assert_eq!(log.read_stream(&a, 2, 100).await?.len(), 1);
    assert_eq!(log.stream_version(&a).await?, 2);
    assert_eq!(log.stream_version(&stream("none")).await?, 0);
    Ok(())
}

async fn conflicts_are_typed_and_write_nothing<B: Backend>(mut b: B) -> Result<()> {
    let log = open(&mut b, Arc::new(ManualClock::new(0)));
    let s = stream("key_1");
    log.append(Append::new(
        s.clone(),
        ExpectedVersion::NoStream,
        vec![heartbeat()],
    ))
    .await?;
    let err = log
        .append(Append::new(
            s.clone(),
            ExpectedVersion::NoStream,
            vec![heartbeat()],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Conflict { actual: 1, .. }), "{err}");
    let err = log
        .append(Append::new(
            s.clone(),
            ExpectedVersion::Exact(7),
            vec![heartbeat()],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Conflict { actual: 1, .. }), "{err}");
    let err = log
        .append(Append::new(s.clone(), ExpectedVersion::Any, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::EmptyAppend), "{err}");
    assert_eq!(log.head().seq, 1);
    let ok = log
        .append(Append::new(
            s.clone(),
            ExpectedVersion::Exact(1),
            vec![heartbeat()],
        ))
        .await?;
    assert_eq!((ok[0].seq, ok[0].version), (2, 2));
    Ok(())
}

async fn concurrent_appends_stay_gap_free<B: Backend>(mut b: B) -> Result<()> {
    let log = Arc::new(open(&mut b, Arc::new(ManualClock::new(0))));
    let mut tasks = Vec::new();
    for w in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream(&format!("tun_{w}"));
            for i in 0..20u64 {
                let got = log
                    .append(Append::new(
                        s.clone(),
                        ExpectedVersion::Exact(i),
                        vec![traffic(i)],
                    ))
                    .await?;
                assert_eq!(got[0].version, i + 1);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let all = log.read_from(1, 10_000).await?;
    assert_eq!(all.len(), 64 * 20);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        if i > 0 {
            assert_eq!(e.prev_hash, all[i - 1].hash);
        }
    }
    Ok(())
}

async fn survives_reopen<B: Backend>(mut b: B) -> Result<()> {
    let clock = Arc::new(ManualClock::new(10));
    let head = {
        let log = open(&mut b, clock.clone());
        for i in 0..10 {
            log.append(Append::new(
                stream("tun_r"),
                ExpectedVersion::Any,
                vec![traffic(i)],
            ))
            .await?;
        }
        log.close();
        log.head()
    };
    b.forget();
    clock.set(5); // a clock that went backwards never makes `at` decrease
    let log = open(&mut b, clock);
    assert_eq!(log.head(), head);
    let next = log
        .append(Append::new(
            stream("tun_r"),
            ExpectedVersion::Exact(10),
            vec![traffic(10)],
        ))
        .await?;
    assert_eq!((next[0].seq, next[0].version, next[0].at), (11, 11, 10));
    assert_eq!(next[0].prev_hash, head.hash);
    Ok(())
}

async fn followers_see_new_commits<B: Backend>(mut b: B) -> Result<()> {
    let log: Arc<dyn EventLog> = Arc::new(open(&mut b, Arc::new(ManualClock::new(0))));
    log.append(Append::new(
        stream("n"),
        ExpectedVersion::Any,
        vec![heartbeat()],
    ))
    .await?;
    let mut follower = Follower::new(log.clone(), 1, 100);
    assert_eq!(follower.next_batch().await?.len(), 1);
    let waiting = tokio::spawn(async move { follower.next_batch().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.append(Append::new(
        stream("n"),
        ExpectedVersion::Any,
        vec![heartbeat()],
    ))
    .await?;
    let got = tokio::time::timeout(Duration::from_secs(10), waiting).await???;
    assert_eq!(got[0].seq, 2);
    Ok(())
}

async fn interval_mode_acks_after_flush<B: Backend>(mut b: B) -> Result<()> {
    let (log, _) = GroupCommitLog::open(
        b.store(),
        Arc::new(ManualClock::new(0)),
        Durability::Interval(Duration::from_millis(20)),
    )?;
    let got = log
        .append(Append::new(
            stream("n"),
            ExpectedVersion::Any,
            vec![heartbeat()],
        ))
        .await?;
    assert_eq!(got[0].seq, 1);
    assert_eq!(log.head().seq, 1);
    Ok(())
}

async fn guards_refuse_stale_decisions<B: Backend>(mut b: B) -> Result<()> {
    let log = open(&mut b, Arc::new(ManualClock::new(0)));
    const BEATS: &[&str] = &["NodeHeartbeat"];
    let guard = |after| Guard {
        after,
        kinds: BEATS,
    };
    let beat = |s: &str| Append::new(stream(s), ExpectedVersion::Any, vec![heartbeat()]);
    // Nothing committed since the log was opened: a decision at seq 0 holds.
    log.append(beat("node_a").guarded(guard(0))).await?;
    log.append(Append::new(
        stream("tun_a"),
        ExpectedVersion::Any,
        vec![traffic(1)],
    ))
    .await?;
    // A heartbeat at seq 1 came after a decision at seq 0, on another stream.
    let err = log
        .append(beat("node_b").guarded(guard(0)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Stale {
                kind: "NodeHeartbeat",
                seq: 1,
                after: 0
            }
        ),
        "{err}"
    );
    assert_eq!(log.head().seq, 2, "a stale append writes nothing");
    // Traffic at seq 2 is not a kind the decision depended on.
    let ok = log.append(beat("node_b").guarded(guard(1))).await?;
    assert_eq!(ok[0].seq, 3);
    // Within one batch: the first of two racing guarded appends wins.
    let (x, y) = tokio::join!(
        log.append(beat("node_c").guarded(guard(3))),
        log.append(beat("node_d").guarded(guard(3)))
    );
    assert_eq!(
        [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "one of two decisions made at the same seq is stale: {x:?} {y:?}"
    );
    drop(log);
    b.forget();
    // After a reopen, unindexed history counts as committed at the head.
    let log = open(&mut b, Arc::new(ManualClock::new(0)));
    let err = log
        .append(beat("node_e").guarded(guard(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Stale { seq: 4, .. }), "{err}");
    log.append(beat("node_e").guarded(guard(4))).await?;
    Ok(())
}

macro_rules! conformance {
    ($($name:ident),+) => {
        mod memory {
            use super::*;
            $(#[tokio::test] async fn $name() -> Result<()> { super::$name(Memory(Arc::new(MemoryStore::new()))).await })+
        }
        mod sled_backend {
            use super::*;
            $(#[tokio::test] async fn $name() -> Result<()> { super::$name(sled_backend()).await })+
        }
        mod jetstream_backend {
            use super::*;
            use common::nats::nats_backend;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> Result<()> { super::$name(nats_backend()).await })+
        }
    };
}

conformance!(
    appends_number_and_chain,
    conflicts_are_typed_and_write_nothing,
    concurrent_appends_stay_gap_free,
    survives_reopen,
    followers_see_new_commits,
    interval_mode_acks_after_flush,
    guards_refuse_stale_decisions
);
