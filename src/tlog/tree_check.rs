//! The audit's check of the stored tree: every stored tile must hold the
//! hashes the log gives, up to the size the tree records; a tree behind the
//! log is fine (the edge grows it as events commit), one ahead is not.

use beamd_events::merkle::TreeHash;
use beamd_events::tiles::{hashes, tile_at, SledTiles, TileBuilder, TileId, TILE_WIDTH};
use beamd_events::LogError;

/// Compares leaves, as the audit reads them, with the stored tiles.
pub struct TreeCheck {
    stored: SledTiles,
    size: u64,
    built: TileBuilder,
    /// The stored level-0 tile being compared.
    leaves: Vec<TreeHash>,
}

/// A disagreement: the first seq whose leaf or subtree differs.
pub type Mismatch = (u64, String);

impl TreeCheck {
    /// Checks `stored` (its recorded size read now).
    pub fn new(stored: SledTiles) -> Result<Self, LogError> {
        let size = stored.size()?;
        Ok(Self {
            stored,
            size,
            built: TileBuilder::default(),
            leaves: Vec::new(),
        })
    }

    /// How many leaves the stored tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next leaf (event `seq`, leaf `seq - 1`).
    pub fn push(&mut self, seq: u64, leaf: TreeHash) -> Result<Option<Mismatch>, LogError> {
        let index = seq - 1;
        if index < self.size {
            if index % TILE_WIDTH == 0 {
                let tile = self.stored.tile(0, index / TILE_WIDTH)?.unwrap_or_default();
                self.leaves = hashes(&tile).unwrap_or_default();
            }
            if self.leaves.get((index % TILE_WIDTH) as usize) != Some(&leaf) {
                return Ok(Some((
                    seq,
                    "the stored Merkle tree's leaf differs from the event".into(),
                )));
            }
        }
        self.built.push(leaf);
        if self.built.size() % TILE_WIDTH == 0 {
            return self.compare();
        }
        Ok(None)
    }

    /// Compares the tiles built since the last call with the stored ones.
    fn compare(&mut self) -> Result<Option<Mismatch>, LogError> {
        for (id, bytes) in self.built.take_changed() {
            if let Some(m) = self.compare_tile(id, &bytes)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    fn compare_tile(&self, id: TileId, built: &[u8]) -> Result<Option<Mismatch>, LogError> {
        let Some(want) = tile_at(self.size, id.level, id.index) else {
            return Ok(None);
        };
        let width = usize::from(want.width) * 32;
        let stored = self.stored.tile(id.level, id.index)?.unwrap_or_default();
        if stored.len() < width {
            let seq = id.first_leaf() + 1;
            let reason = format!("the stored Merkle tree lacks tile {want}");
            return Ok(Some((seq, reason)));
        }
        if built.len() < width {
            return Ok(None);
        }
        // Named by the first event under the first hash that differs.
        let differs = (0..usize::from(want.width))
            .find(|j| stored[j * 32..(j + 1) * 32] != built[j * 32..(j + 1) * 32]);
        Ok(differs.map(|j| {
            let per = TILE_WIDTH.pow(id.level.into());
            let seq = id.first_leaf() + j as u64 * per + 1;
            let reason =
                format!("the stored Merkle tree's tile {want} differs from the events it covers");
            (seq, reason)
        }))
    }

    /// After the last leaf: the remaining tiles, and a tree no larger than the log.
    pub fn finish(mut self) -> Result<Option<Mismatch>, LogError> {
        if let Some(m) = self.compare()? {
            return Ok(Some(m));
        }
        if self.size > self.built.size() {
            return Ok(Some((
                self.built.size() + 1,
                format!(
                    "the stored Merkle tree holds {} events, the log {}",
                    self.size,
                    self.built.size()
                ),
            )));
        }
        Ok(None)
    }
}
