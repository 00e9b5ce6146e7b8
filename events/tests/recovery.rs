//! Recovery of the event log: a torn tail is truncated to the last whole,
//! chained record (in memory and on sled), and a failed flush stops the log
//! for good.

mod common;

use std::sync::Arc;

use anyhow::Result;
use beamd_events::log::{GroupCommitLog, MemoryStore, Store};
use beamd_events::{Append, Durability, EventLog, ExpectedVersion, LogError, ManualClock};
use common::*;

#[tokio::test]
async fn a_torn_tail_is_truncated_in_memory() -> Result<()> {
    let store = Arc::new(MemoryStore::new());
    let (log, _) = GroupCommitLog::open(
        store.clone(),
        Arc::new(ManualClock::new(0)),
        Durability::Off,
    )?;
    for _ in 0..5 {
        log.append(Append::new(
            stream("n"),
            ExpectedVersion::Any,
            vec![heartbeat()],
        ))
        .await?;
    }
    // Nothing was flushed: the crash leaves a torn first record only.
    std::mem::forget(log);
    store.crash(true);
    let (log, report) = GroupCommitLog::open(
        store.clone(),
        Arc::new(ManualClock::new(0)),
        Durability::Always,
    )?;
    assert_eq!(report.truncated_from, Some(1));
    assert_eq!(report.dropped, 1);
    assert_eq!(log.head().seq, 0);
    assert_eq!(log.stream_version(&stream("n")).await?, 0);
    Ok(())
}

/// A sled log holding `n` traffic events of one stream, one append each, closed.
async fn sled_with_traffic(n: u64) -> Result<Sled> {
    let mut b = sled_backend();
    let log = open(&mut b, Arc::new(ManualClock::new(0)));
    for i in 0..n {
        log.append(Append::new(
            stream("tun_t"),
            ExpectedVersion::Any,
            vec![traffic(i)],
        ))
        .await?;
    }
    log.close();
    Ok(b)
}

#[tokio::test]
async fn a_torn_tail_is_truncated_on_sled() -> Result<()> {
    let mut b = sled_with_traffic(10).await?;
    // Forge what a torn write leaves: record 11 cut short, record 12 whole but
    // unchained, and an index entry for 11.
    {
        let store = b.store();
        let good = store.get(10)?.unwrap();
        store
            .tree()
            .insert(beamd_events::log::record_key(11), &good[..good.len() / 2])?;
        store
            .tree()
            .insert(beamd_events::log::record_key(12), good.as_slice())?;
        store.flush()?;
    }
    b.forget();
    let (log, report) =
        GroupCommitLog::open(b.store(), Arc::new(ManualClock::new(0)), Durability::Always)?;
    assert_eq!(report.truncated_from, Some(11));
    assert_eq!(report.dropped, 2);
    assert_eq!(log.head().seq, 10);
    let next = log
        .append(Append::new(
            stream("tun_t"),
            ExpectedVersion::Exact(10),
            vec![traffic(10)],
        ))
        .await?;
    assert_eq!(next[0].seq, 11);
    Ok(())
}

#[tokio::test]
async fn a_failed_flush_stops_the_log_for_good() -> Result<()> {
    let store = Arc::new(MemoryStore::new());
    let (log, _) = GroupCommitLog::open(
        store.clone(),
        Arc::new(ManualClock::new(0)),
        Durability::Always,
    )?;
    log.append(Append::new(
        stream("n"),
        ExpectedVersion::Any,
        vec![heartbeat()],
    ))
    .await?;
    store.fail_flushes(true);
    let err = log
        .append(Append::new(
            stream("n"),
            ExpectedVersion::Any,
            vec![heartbeat()],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Poisoned(_)), "{err}");
    assert_eq!(log.head().seq, 1, "the unflushed event was never published");
    store.fail_flushes(false);
    let err = log
        .append(Append::new(
            stream("n"),
            ExpectedVersion::Any,
            vec![heartbeat()],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::Poisoned(ref why) if why.contains("injected")),
        "{err}"
    );
    // Reopening recovers: the event written before the failed flush is whole,
    // so it is kept; nothing acknowledged was lost.
    drop(log);
    let (log, _) = GroupCommitLog::open(store, Arc::new(ManualClock::new(0)), Durability::Always)?;
    assert!(log.head().seq >= 1);
    Ok(())
}

#[tokio::test]
async fn every_cut_of_the_last_record_recovers_to_the_one_before() -> Result<()> {
    let mut b = sled_with_traffic(11).await?;
    let store = b.store();
    // The marker names the last record of the batch before the newest, so the
    // newest record (11) is the one a crash can tear.
    assert_eq!(store.marker()?.map(|m| m.seq), Some(10));
    let whole = store.get(11)?.unwrap();
    for cut in 0..=whole.len() {
        store
            .tree()
            .insert(beamd_events::log::record_key(11), &whole[..cut])?;
        store.flush()?;
        let (log, report) = GroupCommitLog::open(
            store.clone(),
            Arc::new(ManualClock::new(0)),
            Durability::Always,
        )?;
        if cut == whole.len() {
            assert_eq!(report.truncated_from, None, "the whole record is kept");
            assert_eq!(log.head().seq, 11);
        } else {
            assert_eq!(report.truncated_from, Some(11), "cut at byte {cut}");
            assert_eq!(log.head().seq, 10, "cut at byte {cut}");
            assert!(
                store.get(11)?.is_none(),
                "cut at byte {cut}: the torn record is gone"
            );
        }
        log.close();
    }
    Ok(())
}
