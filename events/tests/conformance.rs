//! The event-log contract, run against every backend (sled and memory).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beamd_events::log::{Follower, GroupCommitLog, MemoryStore, SledStore, Store};
use beamd_events::vocabulary::{NodeHeartbeat, TrafficRecorded};
use beamd_events::{
    Append, Durability, Event, EventLog, ExpectedVersion, LogError, ManualClock, StreamId,
    GENESIS_HASH,
};

/// Opens (and reopens) one backend over the same storage.
trait Backend {
    type S: Store;
    fn store(&mut self) -> Arc<Self::S>;
    /// Simulates a crash of the process: drops everything held in memory.
    fn forget(&mut self);
}

struct Memory(Arc<MemoryStore>);
impl Backend for Memory {
    type S = MemoryStore;
    fn store(&mut self) -> Arc<MemoryStore> {
        self.0.clone()
    }
    fn forget(&mut self) {}
}

struct Sled {
    dir: tempfile::TempDir,
    db: Option<sled::Db>,
}
impl Backend for Sled {
    type S = SledStore;
    fn store(&mut self) -> Arc<SledStore> {
        let path = self.dir.path().join("db");
        let db = self.db.get_or_insert_with(|| reopen(&path));
        Arc::new(SledStore::new(db).unwrap())
    }
    fn forget(&mut self) {
        self.db = None;
    }
}

/// Opens sled at `path`. A database just dropped stays locked until sled's
/// flusher thread notices and ends, so the lock is retried for a while.
fn reopen(path: &std::path::Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open sled at {}: {e}", path.display()),
        }
    }
}

fn sled_backend() -> Sled {
    Sled {
        dir: tempfile::tempdir().unwrap(),
        db: None,
    }
}

fn stream(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

fn heartbeat() -> Event {
    NodeHeartbeat {}.into()
}

fn traffic(n: u64) -> Event {
    TrafficRecorded {
        bytes_in: n,
        ..Default::default()
    }
    .into()
}

fn open<B: Backend>(b: &mut B, clock: Arc<ManualClock>) -> GroupCommitLog<B::S> {
    GroupCommitLog::open(b.store(), clock, Durability::Always)
        .unwrap()
        .0
}

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
    };
}

conformance!(
    appends_number_and_chain,
    conflicts_are_typed_and_write_nothing,
    concurrent_appends_stay_gap_free,
    survives_reopen,
    followers_see_new_commits,
    interval_mode_acks_after_flush
);

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

#[tokio::test]
async fn a_torn_tail_is_truncated_on_sled() -> Result<()> {
    let mut b = sled_backend();
    {
        let log = open(&mut b, Arc::new(ManualClock::new(0)));
        for i in 0..10 {
            log.append(Append::new(
                stream("tun_t"),
                ExpectedVersion::Any,
                vec![traffic(i)],
            ))
            .await?;
        }
        log.close();
    }
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
