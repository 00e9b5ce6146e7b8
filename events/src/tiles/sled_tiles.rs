//! Tiles in their own sled tree: `t` + level (u8) + index (u64 BE) → the
//! tile's hashes (a partial tile is overwritten as it widens; its earlier
//! hashes never change), `n` → the tree size the tiles cover. The tree is
//! derived from the log: losing it costs a rebuild, never an event.

use sled::{Batch, Tree};

use super::{hashes, locate, partial_tiles, subtree_of, TileBuilder, TileId, HASH_LEN, TILE_WIDTH};
use crate::error::LogError;
use crate::merkle::{range_root, Subtrees, TreeHash};

/// The name of the sled tree that holds the tiles.
pub const TILES_TREE: &str = "beamd.tiles";

const TILE: u8 = b't';
const SIZE_KEY: &[u8] = b"n";

/// The tree's tiles stored in sled.
#[derive(Clone)]
pub struct SledTiles {
    tree: Tree,
}

fn key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0; 10];
    k[0] = TILE;
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn err(context: &'static str) -> impl Fn(sled::Error) -> LogError {
    move |e| LogError::storage(context, e)
}

fn corrupt(reason: String) -> LogError {
    LogError::Corrupt { seq: 0, reason }
}

impl SledTiles {
    /// The tiles tree of an open sled database.
    pub fn open(db: &sled::Db) -> Result<Self, LogError> {
        Ok(Self {
            tree: db.open_tree(TILES_TREE).map_err(err("opening the tiles"))?,
        })
    }

    /// How many leaves the stored tiles cover.
    pub fn size(&self) -> Result<u64, LogError> {
        match self
            .tree
            .get(SIZE_KEY)
            .map_err(err("reading the tree size"))?
        {
            None => Ok(0),
            Some(v) => {
                let arr: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("malformed tree size".into()))?;
                Ok(u64::from_be_bytes(arr))
            }
        }
    }

    /// The stored hashes of a tile (as wide as the tree has grown it).
    pub fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self
            .tree
            .get(key(level, index))
            .map_err(err("reading a tile"))?
            .map(|v| v.to_vec()))
    }

    /// Every stored tile, in (level, index) order, with its width as stored.
    pub fn all(&self) -> Result<Vec<(TileId, Vec<u8>)>, LogError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([TILE]) {
            let (k, v) = item.map_err(err("scanning the tiles"))?;
            let index: [u8; 8] = k
                .get(2..10)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt("malformed tile key".into()))?;
            let width = v.len() / HASH_LEN;
            if !v.len().is_multiple_of(HASH_LEN) || width == 0 || width as u64 > TILE_WIDTH {
                return Err(corrupt(format!("tile of {} bytes", v.len())));
            }
            let id = TileId {
                level: k[1],
                index: u64::from_be_bytes(index),
                width: width as u16,
            };
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }

    /// A builder that grows the stored tree on.
    pub fn builder(&self) -> Result<TileBuilder, LogError> {
        let size = self.size()?;
        let mut partial = Vec::new();
        for id in partial_tiles(size) {
            let bytes = self
                .tile(id.level, id.index)?
                .ok_or_else(|| corrupt(format!("tile {id} is missing")))?;
            let hs = hashes(&bytes)
                .filter(|h| h.len() >= usize::from(id.width))
                .ok_or_else(|| corrupt(format!("tile {id} is short")))?;
            partial.push((id, hs[..usize::from(id.width)].to_vec()));
        }
        TileBuilder::resume(size, partial).map_err(corrupt)
    }

    /// Stores changed tiles and the new size, atomically. Not flushed: the
    /// tiles are rebuilt from the durable log after a crash.
    pub fn write(&self, changed: Vec<(TileId, Vec<u8>)>, size: u64) -> Result<(), LogError> {
        let mut batch = Batch::default();
        for (id, bytes) in changed {
            batch.insert(&key(id.level, id.index), bytes);
        }
        batch.insert(SIZE_KEY, &size.to_be_bytes());
        self.tree.apply_batch(batch).map_err(err("writing tiles"))
    }

    /// Drops every tile (before a rebuild).
    pub fn clear(&self) -> Result<(), LogError> {
        self.tree.clear().map_err(err("clearing the tiles"))
    }

    /// The root of the tree's first `size` leaves (`size` up to the stored size).
    pub fn root(&self, size: u64) -> Result<TreeHash, LogError> {
        range_root(self, 0, size)
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Result<TreeHash, LogError> {
        self.perfect(0, index)
    }
}

impl Subtrees for SledTiles {
    type Error = LogError;

    fn perfect(&self, height: u32, index: u64) -> Result<TreeHash, LogError> {
        let (level, tile, offset, count) = locate(height, index);
        let bytes = self.tile(level, tile)?.ok_or_else(|| {
            corrupt(format!(
                "tile {level}/{tile} is missing (subtree {height}/{index})"
            ))
        })?;
        subtree_of(&bytes, offset, count)
            .ok_or_else(|| corrupt(format!("tile {level}/{tile} is short")))
    }
}
