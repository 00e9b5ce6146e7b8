//! Helpers shared by the event-log contract tests: the backends (sled and
//! memory) behind one trait, and small event builders.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

pub mod nats;

use beamd_events::log::{GroupCommitLog, MemoryStore, SledStore, Store};
use beamd_events::vocabulary::{NodeHeartbeat, TrafficRecorded};
use beamd_events::{Durability, Event, ManualClock, StreamId};

/// Opens (and reopens) one backend over the same storage.
pub trait Backend {
    type S: Store;
    fn store(&mut self) -> Arc<Self::S>;
    /// Simulates a crash of the process: drops everything held in memory.
    fn forget(&mut self);
}

pub struct Memory(pub Arc<MemoryStore>);
impl Backend for Memory {
    type S = MemoryStore;
    fn store(&mut self) -> Arc<MemoryStore> {
        self.0.clone()
    }
    fn forget(&mut self) {}
}

pub struct Sled {
    pub dir: tempfile::TempDir,
    pub db: Option<sled::Db>,
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
pub fn reopen(path: &std::path::Path) -> sled::Db {
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

pub fn sled_backend() -> Sled {
    Sled {
        dir: tempfile::tempdir().unwrap(),
        db: None,
    }
}

pub fn stream(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

pub fn heartbeat() -> Event {
    NodeHeartbeat {}.into()
}

pub fn traffic(n: u64) -> Event {
    TrafficRecorded {
        bytes_in: n,
        ..Default::default()
    }
    .into()
}

pub fn open<B: Backend>(b: &mut B, clock: Arc<ManualClock>) -> GroupCommitLog<B::S> {
    GroupCommitLog::open(b.store(), clock, Durability::Always)
        .unwrap()
        .0
}
