//! The snapshot-store contract, run against sled and memory, plus loading =
//! newest snapshot + tail.

use std::sync::Arc;

use anyhow::Result;
use beamd_events::log::{GroupCommitLog, MemoryStore};
use beamd_events::vocabulary::TrafficRecorded;
use beamd_events::{
    Append, Durability, Envelope, EventLog, ExpectedVersion, ManualClock, StreamId,
};
use beamd_snapshots::{
    load_global, load_stream, Fold, MemorySnapshotStore, SledSnapshotStore, Snapshot,
    SnapshotStore, KEEP_PER_ENTITY,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct BytesIn {
    total: u64,
    events: u64,
}

impl Fold for BytesIn {
    const KIND: &'static str = "bytes_in";
    fn apply(&mut self, envelope: &Envelope) {
        if let beamd_events::Event::TrafficRecorded(t) = &envelope.event {
            self.total += t.bytes_in;
        }
        self.events += 1;
    }
}

fn check_store(store: &dyn SnapshotStore) -> Result<()> {
    assert!(store.latest("k", "a")?.is_none());
    for seq in 1..=5 {
        store.save(&Snapshot::new("k", "a", seq, seq, &seq)?)?;
    }
    store.save(&Snapshot::new("k", "b", 2, 1, &2u64)?)?;
    let newest = store.latest("k", "a")?.unwrap();
    assert_eq!((newest.seq, newest.decode::<u64>()?), (5, 5));
    let all = store.all()?;
    let of_a: Vec<u64> = all.iter().filter(|s| s.id == "a").map(|s| s.seq).collect();
    assert_eq!(of_a.len(), KEEP_PER_ENTITY, "older snapshots are pruned");
    assert_eq!(of_a, vec![3, 4, 5], "ordered by seq");
    store.flush()?;
    Ok(())
}

#[test]
fn memory_store_conforms() -> Result<()> {
    check_store(&MemorySnapshotStore::new())
}

#[test]
fn sled_store_conforms_and_persists() -> Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let db = sled::open(dir.path())?;
        check_store(&SledSnapshotStore::new(&db)?)?;
    }
    let db = sled::open(dir.path())?;
    let store = SledSnapshotStore::new(&db)?;
    assert_eq!(store.latest("k", "a")?.unwrap().seq, 5);
    // A flipped byte in the stored state is caught on load.
    let (key, value) = store.tree().iter().next_back().unwrap()?;
    let mut bad = value.to_vec();
    let n = bad.len();
    bad[n - 40] ^= 0xff;
    store.tree().insert(key, bad)?;
    assert!(store.latest("k", "b").is_err());
    Ok(())
}

#[tokio::test]
async fn loading_is_snapshot_plus_tail() -> Result<()> {
    let (log, _) = GroupCommitLog::open(
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(0)),
        Durability::Always,
    )?;
    let store = MemorySnapshotStore::new();
    let s = StreamId::new("tun_1")?;
    let other = StreamId::new("tun_2")?;
    for i in 1..=10u64 {
        for stream in [&s, &other] {
            let ev = TrafficRecorded {
                bytes_in: i,
                ..Default::default()
            };
            log.append(Append::new(
                stream.clone(),
                ExpectedVersion::Any,
                vec![ev.into()],
            ))
            .await?;
        }
    }
    let full: BytesIn = load_stream::<BytesIn>(&log, &store, &s).await?.state;
    assert_eq!(
        full,
        BytesIn {
            total: 55,
            events: 10
        }
    );

    // Snapshot the stream after its 4th event, then load: only the tail replays.
    let first4 = log.read_stream(&s, 1, 4).await?;
    let mut at4 = BytesIn::default();
    first4.iter().for_each(|e| at4.apply(e));
    let last = first4.last().unwrap();
    store.save(&Snapshot::new(
        BytesIn::KIND,
        s.as_str(),
        last.seq,
        last.version,
        &at4,
    )?)?;
    let loaded = load_stream::<BytesIn>(&log, &store, &s).await?;
    assert!(loaded.from_snapshot);
    assert_eq!(loaded.replayed, 6);
    assert_eq!(loaded.state, full);
    assert_eq!(loaded.version, 10);

    let global = load_global::<BytesIn>(&log, &store, "all").await?;
    assert_eq!(
        global.state,
        BytesIn {
            total: 110,
            events: 20
        }
    );
    store.save(&Snapshot::new(
        BytesIn::KIND,
        "all",
        global.seq,
        0,
        &global.state,
    )?)?;
    let again = load_global::<BytesIn>(&log, &store, "all").await?;
    assert_eq!((again.replayed, again.state), (0, global.state));
    Ok(())
}
