//! `beamd audit --since`: proves the present log extends a checkpoint saved
//! earlier (its first N events hash to the checkpoint's root) or names the
//! first seq where it does not: a changed event (found with the tiles saved
//! beside the checkpoint) or the first missing one of a truncated tail.

use anyhow::{Context, Result};
use beamd_events::envelope::hex;
use beamd_events::log::{ChainReader, Store};
use beamd_events::merkle::{leaf_hash, CompactTree, TreeHash};
use beamd_events::LogError;

use super::checkpoint::SignedCheckpoint;
use super::cosign::Quorum;
use super::mirror::{Saved, SavedTiles};
use super::note::Verifier;

/// Why the log does not extend the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotExtended {
    /// The first seq that differs, when it can be named.
    pub seq: Option<u64>,
    /// What differs.
    pub reason: String,
}

/// Checks the log in `store` against the saved checkpoint; `Ok(Ok(line))` when it extends it.
pub fn check(
    store: &impl Store,
    saved: &Saved,
    verifier: &Verifier,
    quorum: &Quorum,
) -> Result<Result<String, NotExtended>> {
    let signed = SignedCheckpoint::open(&saved.note, verifier)
        .context("the saved checkpoint does not verify")?;
    if !quorum.witnesses.is_empty() {
        quorum.check(&saved.note)?;
    }
    let cp = &signed.checkpoint;
    let n = cp.size;
    let present = store.last_seq()?;
    let tiles = match &saved.dir {
        Some(dir) => {
            let t = SavedTiles::new(dir, n);
            match t.complete() && t.root().ok() == Some(cp.root) {
                true => Some(t),
                false => {
                    eprintln!("beamd audit: the tiles saved in {} do not give the checkpoint's root: ignoring them", dir.display());
                    None
                }
            }
        }
        None => None,
    };
    let fail = |seq, reason: String| Ok(Err(NotExtended { seq, reason }));
    let mut tree = CompactTree::default();
    let mut saved_leaves: Vec<TreeHash> = Vec::new();
    let mut reader = ChainReader::new(store, 1, n)?;
    while let Some(item) = reader.next() {
        let env = match item {
            Ok(env) => env,
            Err(LogError::Corrupt { seq, reason }) => return fail(Some(seq), reason),
            Err(other) => return Err(other.into()),
        };
        let leaf = leaf_hash(reader.last_record());
        if let Some(t) = &tiles {
            let index = env.seq - 1;
            if index % 256 == 0 {
                saved_leaves = t.leaves_of_tile(index / 256)?;
            }
            let theirs = saved_leaves.get((index % 256) as usize);
            if theirs != Some(&leaf) {
                let reason = format!(
                    "event {} is not the one the checkpoint signed: its leaf hash is {}, the saved tree's {}",
                    env.seq,
                    hex(&leaf),
                    theirs.map(hex).unwrap_or_default()
                );
                return fail(Some(env.seq), reason);
            }
        }
        tree.push(leaf);
    }
    if present < n {
        let reason = format!(
            "the log ends at seq {present}, the checkpoint signed {n} events: seq {} on are missing",
            present + 1
        );
        return fail(Some(present + 1), reason);
    }
    if tree.root() != cp.root {
        let reason = format!(
            "its first {n} events hash to {}, the checkpoint's root is {}: an event at or before seq {n} was changed (save checkpoints with `beamd checkpoint --save DIR` to have it named)",
            hex(&tree.root()),
            hex(&cp.root)
        );
        return fail(None, reason);
    }
    Ok(Ok(format!(
        "the log extends {}'s checkpoint of {n} events (root {}); it holds {present} now",
        cp.origin,
        hex(&cp.root)
    )))
}
