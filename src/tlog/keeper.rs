//! The edge's transparency log: grows the tiles as events commit, signs a
//! checkpoint every N events or T seconds, and never signs a tree that does
//! not extend the last checkpoint it signed.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use beamd_events::envelope::{hex, verify_record};
use beamd_events::merkle::{leaf_hash, prove_consistency, verify_consistency};
use beamd_events::tiles::{SledTiles, TileBuilder};
use beamd_events::{EventLog, Hash, LogError, GENESIS_HASH};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, SignedCheckpoint};
use super::note::{LogKey, Verifier};

/// The sled tree of signed checkpoints: size (u64 BE) → note.
pub const CHECKPOINTS_TREE: &str = "beamd.checkpoints";
/// The sled tree of witnesses' cosignatures: size (u64 BE) and the
/// witness's name → its signature line.
pub const COSIGNATURES_TREE: &str = "beamd.cosignatures";
const READ_BATCH: usize = 4096;
/// The least time between two growths of the tree: under load one write of
/// tiles covers many commits instead of one each.
const GROW_EVERY: Duration = Duration::from_millis(20);
/// How long the keeper waits after a storage error before it tries again.
const RETRY: Duration = Duration::from_secs(2);

/// When checkpoints are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign once this many events arrived since the last checkpoint.
    pub every: u64,
    /// Sign once this long passed since the last checkpoint, if any event arrived.
    pub interval: Duration,
}

/// The tiles, the key and the checkpoints of one edge.
pub struct Transparency {
    tiles: SledTiles,
    signed: sled::Tree,
    cosigned: sled::Tree,
    key: LogKey,
    policy: CheckpointPolicy,
    latest: RwLock<Option<SignedCheckpoint>>,
    refused: Mutex<Option<String>>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    // Values are replaced whole: a poisoned lock holds no torn state.
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Transparency {
    /// Opens the tiles and the checkpoints signed so far in `db`.
    pub fn open(db: &sled::Db, key: LogKey, policy: CheckpointPolicy) -> Result<Self> {
        let signed = db
            .open_tree(CHECKPOINTS_TREE)
            .context("cannot open the checkpoints")?;
        let cosigned = db
            .open_tree(COSIGNATURES_TREE)
            .context("cannot open the cosignatures")?;
        let t = Self {
            tiles: SledTiles::open(db)?,
            signed,
            cosigned,
            key,
            policy,
            latest: RwLock::new(None),
            refused: Mutex::new(None),
        };
        if let Some((_, note)) = t.signed.last().context("cannot read the checkpoints")? {
            let note = String::from_utf8_lossy(&note).into_owned();
            match SignedCheckpoint::open(&note, &t.verifier()) {
                Ok(last) => *t.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(last),
                Err(e) => t.refuse(format!(
                    "the last stored checkpoint does not verify with this edge's key ({e}): not signing"
                )),
            }
        }
        Ok(t)
    }

    /// The last signed checkpoint.
    pub fn latest(&self) -> Option<SignedCheckpoint> {
        read(&self.latest)
    }

    /// The checkpoint signed at `size`, if there is one.
    pub fn signed_at(&self, size: u64) -> Result<Option<String>> {
        Ok(self
            .signed
            .get(size.to_be_bytes())
            .context("cannot read the checkpoints")?
            .map(|n| String::from_utf8_lossy(&n).into_owned()))
    }

    /// Keeps a witness's cosignature line of the checkpoint of `size`.
    pub fn add_cosignature(&self, size: u64, witness: &str, line: &str) -> Result<()> {
        let mut key = size.to_be_bytes().to_vec();
        key.extend_from_slice(witness.as_bytes());
        self.cosigned
            .insert(key, line.as_bytes())
            .context("cannot store the cosignature")?;
        Ok(())
    }

    /// The checkpoint of `size` with every cosignature collected for it,
    /// as one signed note.
    pub fn cosigned_at(&self, size: u64) -> Result<Option<String>> {
        let Some(mut note) = self.signed_at(size)? else {
            return Ok(None);
        };
        for item in self.cosigned.scan_prefix(size.to_be_bytes()) {
            let (_, line) = item.context("cannot read the cosignatures")?;
            note.push_str(&String::from_utf8_lossy(&line));
        }
        Ok(Some(note))
    }

    /// The stored tree.
    pub fn tiles(&self) -> &SledTiles {
        &self.tiles
    }

    /// The key auditors check checkpoints with.
    pub fn verifier(&self) -> Verifier {
        self.key.verifier()
    }

    /// Why signing stopped, if it did.
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn refuse(&self, why: String) {
        tracing::error!("transparency log: {why}");
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The builder for the stored tiles, or an empty one (tiles cleared)
    /// when they are missing, torn or not this log's.
    async fn resume(&self, log: &dyn EventLog) -> Result<(TileBuilder, Hash), LogError> {
        let head = log.head().seq;
        let size = self.tiles.size()?;
        // The stored tree fits when it is not ahead of the log and its last
        // leaf is the log's record at its size; that record anchors the chain.
        if size > 0 && size <= head {
            let rec = log.read_records(size, 1).await?;
            let leaf = self.tiles.leaf(size - 1).ok();
            if let Some((seq, bytes)) = rec.first() {
                if *seq == size && Some(leaf_hash(bytes)) == leaf {
                    if let Ok(builder) = self.tiles.builder() {
                        return Ok((builder, verify_record(*seq, bytes)?.1));
                    }
                }
            }
        }
        if size > 0 {
            tracing::warn!(
                "transparency log: the stored tree ({size} leaves) does not match the log ({head} events): rebuilding it"
            );
        } else if head > 0 {
            tracing::info!("transparency log: building the tree over {head} events");
        }
        self.tiles.clear()?;
        Ok((TileBuilder::default(), GENESIS_HASH))
    }

    /// Adds every committed event after the builder's size to the tiles.
    async fn grow(
        &self,
        log: &dyn EventLog,
        builder: &mut TileBuilder,
        anchor: &mut Hash,
    ) -> Result<(), LogError> {
        loop {
            let records = log.read_records(builder.size() + 1, READ_BATCH).await?;
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                return Ok(());
            };
            if verify_record(first.0, &first.1)?.0 != *anchor {
                return Err(LogError::Corrupt {
                    seq: first.0,
                    reason: "does not chain to the last event in the tree".into(),
                });
            }
            *anchor = verify_record(last.0, &last.1)?.1;
            for (_, bytes) in &records {
                builder.push(leaf_hash(bytes));
            }
            self.tiles.write(builder.take_changed(), builder.size())?;
        }
    }

    /// Whether a checkpoint is due for a tree of `size`.
    fn due(&self, size: u64, since: Option<Instant>) -> bool {
        if self.refused().is_some() {
            return false;
        }
        match self.latest() {
            None => true,
            Some(last) => {
                let grown = size.saturating_sub(last.checkpoint.size);
                grown > 0
                    && (grown >= self.policy.every
                        || since.is_none_or(|s| s.elapsed() >= self.policy.interval))
            }
        }
    }

    /// Signs the tree of `size` if it extends the last checkpoint; stores
    /// and flushes the checkpoint before it is served.
    fn sign(&self, size: u64) -> Result<()> {
        let root = self.tiles.root(size)?;
        if let Some(last) = self.latest() {
            let old = &last.checkpoint;
            let extends = match old.size {
                0 => true,
                n if n > size => false,
                n => prove_consistency(&self.tiles, n, size)?
                    .is_some_and(|p| verify_consistency(n, size, &old.root, &root, &p)),
            };
            if !extends {
                self.refuse(format!(
                    "the tree of {size} events does not extend the checkpoint of {} events signed before (root {}): not signing; run beamd audit --since",
                    old.size,
                    hex(&old.root)
                ));
                return Ok(());
            }
        }
        let checkpoint = Checkpoint {
            origin: self.key.name().to_string(),
            size,
            root,
        };
        let note = self.key.sign(&checkpoint.text());
        // Not flushed here: the checkpoint signs a tree of events that are
        // already durable, so one lost in a crash is signed again, the same.
        self.signed
            .insert(size.to_be_bytes(), note.as_bytes())
            .context("cannot store the checkpoint")?;
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) =
            Some(SignedCheckpoint { checkpoint, note });
        Ok(())
    }
}

/// Runs `run` on a thread of its own: growing the tree reads, hashes and
/// stores thousands of records at a time, which must not hold up a worker
/// of the runtime that serves traffic.
pub fn spawn(
    t: Arc<Transparency>,
    log: Arc<dyn EventLog>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("beamd-tlog".into())
        .spawn(move || runtime.block_on(run(t, log, stop)))?;
    Ok(())
}

/// Keeps the tree and the checkpoints up with `log` until `stop`.
pub async fn run(t: Arc<Transparency>, log: Arc<dyn EventLog>, stop: CancellationToken) {
    let mut head = log.subscribe();
    loop {
        match keep(&t, log.as_ref(), &mut head, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("transparency log: {e:#}; trying again in {RETRY:?}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

async fn keep(
    t: &Transparency,
    log: &dyn EventLog,
    head: &mut tokio::sync::watch::Receiver<beamd_events::LogHead>,
    stop: &CancellationToken,
) -> Result<()> {
    let (mut builder, mut anchor) = t.resume(log).await?;
    // The first checkpoint after a start is due at once.
    let mut since: Option<Instant> = None;
    loop {
        head.borrow_and_update();
        t.grow(log, &mut builder, &mut anchor).await?;
        if t.due(builder.size(), since) {
            t.sign(builder.size())?;
            since = Some(Instant::now());
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(GROW_EVERY) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            changed = head.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep_until(since.unwrap_or_else(Instant::now) + t.policy.interval) => {}
        }
    }
}
