//! The JetStream store on a real nats-server, beyond the shared contract:
//! a second store on the same stream follows what the first writes, record
//! for record, and a write decided against a stale head is refused by the
//! server instead of forking the chain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use beamd_events::log::Store;
use beamd_events::{Append, EventLog, ExpectedVersion, ManualClock};
use common::nats::nats_backend;
use common::*;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_follows_and_a_stale_writer_cannot_fork() -> Result<()> {
    let mut b = nats_backend();
    let clock = Arc::new(ManualClock::new(0));
    let first = open(&mut b, clock.clone());
    let second = open(&mut b, clock.clone());
    for i in 0..3 {
        first
            .append(Append::new(
                stream("tun_a"),
                ExpectedVersion::Exact(i),
                vec![traffic(i)],
            ))
            .await?;
    }
    // The second store's copy follows the stream, record for record.
    let mut followed = 0;
    for _ in 0..100 {
        followed = second.store().last_seq()?;
        if followed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        followed == 3,
        "the second store followed {followed} of 3 records"
    );
    for seq in 1..=3 {
        ensure!(
            second.store().get(seq)? == first.store().get(seq)?,
            "record {seq} differs between the stores"
        );
    }
    // The second log decided its head before those writes: its append is
    // refused, and the stream keeps one chain.
    let refused = second
        .append(Append::new(
            stream("n"),
            ExpectedVersion::Any,
            vec![heartbeat()],
        ))
        .await;
    ensure!(
        refused.is_err(),
        "a stale writer was let through: {refused:?}"
    );
    drop((first, second));
    b.forget();
    let reopened = open(&mut b, clock);
    ensure!(
        reopened.head().seq == 3,
        "the stream holds {} records",
        reopened.head().seq
    );
    let all = reopened.read_from(1, 10).await?;
    ensure!(all.len() == 3 && all.iter().all(|e| e.stream.as_str() == "tun_a"));
    Ok(())
}
