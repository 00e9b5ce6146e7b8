//! Recovery of the event log: a torn tail is truncated to the last whole,
//! chained record (in memory and on sled), a failed flush stops the log for
//! good, and a sled log written in the first layout (one entry per record)
//! is read, extended and truncated like one written in blocks.

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
        store.overwrite_record(11, &good[..good.len() / 2])?;
        store.overwrite_record(12, good.as_slice())?;
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
        store.overwrite_record(11, &whole[..cut])?;
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

/// Writes `n` traffic events of `tun_old` the way the first layout stored
/// them (one `e` entry per record, one `s` index entry per event, a marker),
/// through the same record encoding.
fn write_layout1(store: &beamd_events::log::SledStore, n: u64) -> Result<()> {
    use beamd_events::envelope::encode_record;
    use beamd_events::log::{legacy_index_key, record_key};
    let mut prev = beamd_events::GENESIS_HASH;
    let old = stream("tun_old");
    for seq in 1..=n {
        let (hash, bytes) = encode_record(seq, 1_000, &old, seq, &traffic(seq), &prev)?;
        store.tree().insert(record_key(seq), bytes)?;
        store
            .tree()
            .insert(legacy_index_key(&old, seq), &seq.to_be_bytes())?;
        prev = hash;
    }
    store.flush()?;
    Ok(())
}

#[tokio::test]
async fn a_log_in_the_first_layout_is_read_and_extended_in_blocks() -> Result<()> {
    let mut b = sled_backend();
    write_layout1(&b.store(), 300)?;
    let (log, report) =
        GroupCommitLog::open(b.store(), Arc::new(ManualClock::new(0)), Durability::Always)?;
    assert_eq!(report.truncated_from, None);
    assert_eq!(log.head().seq, 300);
    assert_eq!(log.stream_version(&stream("tun_old")).await?, 300);
    // New appends, to the old stream and a new one, go into blocks and runs.
    for i in 0..20 {
        log.append(Append::new(
            stream("tun_old"),
            ExpectedVersion::Exact(300 + 2 * i),
            vec![traffic(i), traffic(i + 1)],
        ))
        .await?;
        log.append(Append::new(
            stream("tun_new"),
            ExpectedVersion::Any,
            vec![traffic(i)],
        ))
        .await?;
    }
    assert_eq!(log.read_stream(&stream("tun_new"), 1, 100).await?.len(), 20);
    assert_eq!(
        b.store().entry_counts()?.3,
        0,
        "the stream index is still in memory"
    );
    // One more append fills the in-memory stream index: it is written as
    // one run per stream, with this batch.
    let n = beamd_events::log::INDEX_EVERY as u64;
    log.append(Append::new(
        stream("tun_new"),
        ExpectedVersion::Exact(20),
        (0..n).map(traffic).collect(),
    ))
    .await?;
    let last = 360 + n;
    let (records, index, blocks, runs) = b.store().entry_counts()?;
    assert_eq!(
        (records, index),
        (300, 300),
        "the first layout is left as it was"
    );
    assert_eq!(runs, 2, "one run for each stream");
    // A block ends at 1,024 records or 8 KiB; these records are ~100 bytes.
    let big = n / 1024 + n * 200 / beamd_events::log::BLOCK_BYTES as u64 + 1;
    assert!(blocks <= 40 + big && big < n / 10, "{blocks} blocks");
    let all = log.read_from(1, 100_000).await?;
    assert_eq!(all.len() as u64, last);
    assert!(all
        .windows(2)
        .all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1));
    let old = log.read_stream(&stream("tun_old"), 295, 100).await?;
    let versions: Vec<u64> = old.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (295..=340).collect::<Vec<_>>(),
        "across both layouts"
    );
    assert_eq!(log.stream_version(&stream("tun_old")).await?, 340);
    assert_eq!(log.stream_version(&stream("tun_new")).await?, 20 + n);
    log.close();

    // A torn record in the newest block is cut away on open with what
    // follows it, the written run is cut to match, and the first layout
    // underneath stays whole.
    let store = b.store();
    let torn = last - 10;
    let whole = store.get(torn)?.expect("stored");
    store.overwrite_record(torn, &whole[..whole.len() - 1])?;
    store.flush()?;
    drop((store, log));
    b.forget();
    let (log, report) =
        GroupCommitLog::open(b.store(), Arc::new(ManualClock::new(0)), Durability::Always)?;
    assert_eq!((report.truncated_from, report.dropped), (Some(torn), 11));
    assert_eq!(log.head().seq, torn - 1);
    assert_eq!(log.stream_version(&stream("tun_old")).await?, 340);
    let new_version = 20 + n - 11;
    assert_eq!(log.stream_version(&stream("tun_new")).await?, new_version);
    let read = log.read_stream(&stream("tun_new"), 1, 100_000).await?;
    assert_eq!(read.len() as u64, new_version);
    assert_eq!(read.last().map(|e| e.seq), Some(torn - 1));
    assert_eq!(log.read_from(1, 100_000).await?.len() as u64, torn - 1);
    let next = log
        .append(Append::new(
            stream("tun_new"),
            ExpectedVersion::Exact(new_version),
            vec![traffic(9)],
        ))
        .await?;
    assert_eq!((next[0].seq, next[0].version), (torn, new_version + 1));
    assert_eq!(b.store().entry_counts()?.3, 2, "the cut run is still there");
    Ok(())
}
