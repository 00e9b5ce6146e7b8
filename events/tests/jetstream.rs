//! The JetStream log on a real nats-server with two writers on one stream,
//! beyond the shared contract: each follows what the other writes, record
//! for record; a write decided against a stale head is refused by the server
//! and decided again on top of the other's records (never a fork); version
//! conflicts across writers are typed; and writers racing each other leave
//! one gap-free chain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use beamd_events::log::Store;
use beamd_events::{Append, EventLog, ExpectedVersion, Guard, LogError, ManualClock};
use common::nats::nats_backend;
use common::*;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_share_one_chain() -> Result<()> {
    let mut b = nats_backend();
    let clock = Arc::new(ManualClock::new(0));
    let first = Arc::new(open(&mut b, clock.clone()));
    let second = Arc::new(open(&mut b, clock.clone()));
    for i in 0..3 {
        first
            .append(Append::new(
                stream("tun_a"),
                ExpectedVersion::Exact(i),
                vec![traffic(i)],
            ))
            .await?;
    }
    // The second follows: its store's copy and its committed head.
    let mut followed = 0;
    for _ in 0..100 {
        followed = second.head().seq;
        if followed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        followed == 3,
        "the second writer followed {followed} of 3 events"
    );
    for seq in 1..=3 {
        ensure!(
            second.store().get(seq)? == first.store().get(seq)?,
            "record {seq} differs between the stores"
        );
    }
    // A version decided before the first's writes is a typed conflict.
    let stale = second
        .append(Append::new(
            stream("tun_a"),
            ExpectedVersion::Exact(0),
            vec![traffic(9)],
        ))
        .await;
    ensure!(
        matches!(stale, Err(LogError::Conflict { actual: 3, .. })),
        "{stale:?}"
    );
    // Both write at once, to their own streams and to a shared one.
    let mut tasks = Vec::new();
    for (w, log) in [first.clone(), second.clone()].into_iter().enumerate() {
        for t in 0..4 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let own = stream(&format!("tun_{w}_{t}"));
                for i in 0..15u64 {
                    log.append(Append::new(
                        own.clone(),
                        ExpectedVersion::Exact(i),
                        vec![traffic(i)],
                    ))
                    .await?;
                    log.append(Append::new(
                        stream("node_shared"),
                        ExpectedVersion::Any,
                        vec![heartbeat()],
                    ))
                    .await?;
                }
                anyhow::Ok(())
            }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let total = 3 + 2 * 4 * 15 * 2;
    drop((first, second));
    b.forget();
    let reopened = open(&mut b, clock);
    ensure!(
        reopened.head().seq == total,
        "{} events, wanted {total}",
        reopened.head().seq
    );
    let all = reopened.read_from(1, 10_000).await?;
    for (i, e) in all.iter().enumerate() {
        ensure!(e.seq == i as u64 + 1, "seq {} at {i}", e.seq);
        if i > 0 {
            ensure!(
                e.prev_hash == all[i - 1].hash,
                "the chain breaks at {}",
                e.seq
            );
        }
    }
    ensure!(reopened.stream_version(&stream("node_shared")).await? == 120);
    for w in 0..2 {
        for t in 0..4 {
            let v = reopened
                .stream_version(&stream(&format!("tun_{w}_{t}")))
                .await?;
            ensure!(v == 15, "tun_{w}_{t} at version {v}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_see_the_other_writers_events() -> Result<()> {
    let mut b = nats_backend();
    let clock = Arc::new(ManualClock::new(0));
    let first = open(&mut b, clock.clone());
    let second = open(&mut b, clock);
    const TRAFFIC: &[&str] = &["TrafficRecorded"];
    let guard = |after| Guard {
        after,
        kinds: TRAFFIC,
    };
    first
        .append(Append::new(
            stream("tun_a"),
            ExpectedVersion::Any,
            vec![traffic(1)],
        ))
        .await?;
    // The second writer decided at seq 0, before the first writer's traffic:
    // refused, whether it had followed that record yet or learns of it from
    // the server's refusal.
    let err = second
        .append(
            Append::new(stream("tun_b"), ExpectedVersion::Any, vec![traffic(2)]).guarded(guard(0)),
        )
        .await
        .unwrap_err();
    ensure!(
        matches!(
            err,
            LogError::Stale {
                kind: "TrafficRecorded",
                seq: 1,
                after: 0
            }
        ),
        "{err}"
    );
    let ok = second
        .append(
            Append::new(stream("tun_b"), ExpectedVersion::Any, vec![heartbeat()]).guarded(guard(1)),
        )
        .await?;
    ensure!(ok[0].seq == 2);
    // A heartbeat is not traffic: the first writer's decision at seq 1 holds.
    let ok = first
        .append(
            Append::new(stream("tun_a"), ExpectedVersion::Any, vec![traffic(3)]).guarded(guard(1)),
        )
        .await?;
    ensure!(ok[0].seq == 3, "seq {}", ok[0].seq);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_the_servers_max_payload() -> Result<()> {
    use beamd_events::vocabulary::NodeLeft;
    let mut b = nats_backend();
    let log = Arc::new(open(&mut b, Arc::new(ManualClock::new(0))));
    let big = |i: usize| -> beamd_events::Event {
        NodeLeft {
            reason: format!("{i:06}").repeat(100_000 / 6),
        }
        .into()
    };
    // 40 appends of 100 KB at once: together four times the server's 1 MiB.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(Append::new(
                stream(&format!("node_{i}")),
                ExpectedVersion::NoStream,
                vec![big(i)],
            ))
            .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    // One append that cannot fit in any message is refused alone.
    let err = log
        .append(Append::new(
            stream("node_huge"),
            ExpectedVersion::Any,
            (0..12).map(big).collect(),
        ))
        .await
        .unwrap_err();
    ensure!(matches!(err, LogError::TooLarge { events: 12 }), "{err}");
    log.append(Append::new(
        stream("node_after"),
        ExpectedVersion::Any,
        vec![heartbeat()],
    ))
    .await?;
    drop(log);
    b.forget();
    let reopened = open(&mut b, Arc::new(ManualClock::new(0)));
    let all = reopened.read_from(1, 100).await?;
    ensure!(all.len() == 41, "{} events read back", all.len());
    Ok(())
}
