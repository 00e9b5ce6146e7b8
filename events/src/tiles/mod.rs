//! The Merkle tree kept as C2SP tlog-tiles: tiles of 256 hashes, level 0
//! holding leaf hashes and level L the roots of full tiles of level L-1, so
//! that any proof is computed from a few stored tiles and any tlog-tiles
//! client can read the tree. `TileBuilder` grows the tiles one leaf at a
//! time without I/O; `SledTiles` stores them in their own sled tree.

mod sled_tiles;

use std::collections::BTreeSet;
use std::fmt;

pub use sled_tiles::{SledTiles, TILES_TREE};

use crate::merkle::{root, TreeHash};

/// Hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels a tile spans (256 = 2^8).
pub const TILE_HEIGHT: u32 = 8;
/// Bytes per hash.
pub const HASH_LEN: usize = 32;

/// One tile: its level, its index within the level and how many hashes it holds (1–256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// 0 for leaf hashes; level L hashes subtrees of 256^L leaves.
    pub level: u8,
    /// Its position within the level.
    pub index: u64,
    /// How many hashes: 256 for a full tile, fewer for a partial one.
    pub width: u16,
}

impl TileId {
    /// The tile's path below the log's prefix: `tile/<L>/<N>[.p/<W>]`, the
    /// index in 3-digit groups all but the last prefixed `x`.
    pub fn path(&self) -> String {
        let digits = format!("{:03}", self.index);
        // Groups of three from the right; the first may need padding.
        let pad = (3 - digits.len() % 3) % 3;
        let padded = format!("{}{digits}", "0".repeat(pad));
        let groups: Vec<&str> = padded
            .as_bytes()
            .chunks(3)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        let mut n = String::new();
        for (i, g) in groups.iter().enumerate() {
            if i + 1 < groups.len() {
                n.push('x');
                n.push_str(g);
                n.push('/');
            } else {
                n.push_str(g);
            }
        }
        match u64::from(self.width) {
            TILE_WIDTH => format!("tile/{}/{n}", self.level),
            w => format!("tile/{}/{n}.p/{w}", self.level),
        }
    }

    /// Parses what follows `tile/` in a tile path.
    pub fn parse(path: &str) -> Result<TileId, String> {
        let bad = |why: &str| format!("bad tile path {path:?}: {why}");
        let (body, width) = match path.split_once(".p/") {
            Some((body, w)) => {
                let width: u16 = w
                    .parse()
                    .ok()
                    .filter(|n| (1..TILE_WIDTH as u16).contains(n) && !w.starts_with('0'))
                    .ok_or_else(|| bad("the width after .p/ must be 1 to 255"))?;
                (body, width)
            }
            None => (path, TILE_WIDTH as u16),
        };
        let mut parts = body.split('/');
        let level = parts.next().unwrap_or_default();
        if level.is_empty() || (level.len() > 1 && level.starts_with('0')) {
            return Err(bad("the level must be a number without leading zeroes"));
        }
        let level: u8 = level
            .parse()
            .ok()
            .filter(|l| *l <= 63)
            .ok_or_else(|| bad("the level must be 0 to 63"))?;
        let groups: Vec<&str> = parts.collect();
        let Some((last, leading)) = groups.split_last() else {
            return Err(bad("no tile index"));
        };
        let mut index: u64 = 0;
        for (i, g) in leading.iter().map(|g| (true, *g)).chain([(false, *last)]) {
            let digits = if i {
                g.strip_prefix('x')
                    .ok_or_else(|| bad("index groups start with x"))?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("index groups are three digits"));
            }
            let d: u64 = digits.parse().map_err(|_| bad("index"))?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(d))
                .ok_or_else(|| bad("index too large"))?;
        }
        Ok(TileId {
            level,
            index,
            width,
        })
    }

    /// The first leaf (0-based) the tile's hashes cover.
    pub fn first_leaf(&self) -> u64 {
        self.index
            .saturating_mul(TILE_WIDTH)
            .saturating_mul(TILE_WIDTH.saturating_pow(self.level.into()))
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// How many hashes level `level` holds in a tree of `size` leaves.
fn hashes_at(size: u64, level: u8) -> u64 {
    let per = TILE_WIDTH.checked_pow(level.into());
    per.map_or(0, |per| size / per)
}

/// Every tile of a tree of `size` leaves, full ones and the partial one of
/// each level, level by level.
pub fn tiles_for(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    for level in 0u8..=63 {
        let n = hashes_at(size, level);
        if n == 0 {
            break;
        }
        for index in 0..n / TILE_WIDTH {
            out.push(TileId {
                level,
                index,
                width: TILE_WIDTH as u16,
            });
        }
        let width = (n % TILE_WIDTH) as u16;
        if width > 0 {
            out.push(TileId {
                level,
                index: n / TILE_WIDTH,
                width,
            });
        }
    }
    out
}

/// The partial tile of each level of a tree of `size`, as `(level, index, width)`.
pub fn partial_tiles(size: u64) -> Vec<TileId> {
    tiles_for(size)
        .into_iter()
        .filter(|t| u64::from(t.width) < TILE_WIDTH)
        .collect()
}

/// Where the hash of the perfect subtree `height`/`index` is computed from:
/// the tile (level, index) and the range of its hashes (offset, count).
pub fn locate(height: u32, index: u64) -> (u8, u64, usize, usize) {
    let level = height / TILE_HEIGHT;
    let within = height % TILE_HEIGHT;
    let first = index << within;
    (
        level as u8,
        first / TILE_WIDTH,
        (first % TILE_WIDTH) as usize,
        1usize << within,
    )
}

/// The root of `count` hashes from `offset` in a tile's bytes; `None` when
/// the tile is torn or too short.
pub fn subtree_of(bytes: &[u8], offset: usize, count: usize) -> Option<TreeHash> {
    let all = hashes(bytes)?;
    Some(root(all.get(offset..offset + count)?))
}

/// The tile (level, index) of a tree of `size`, with its width there; `None`
/// when the tree has no such tile.
pub fn tile_at(size: u64, level: u8, index: u64) -> Option<TileId> {
    let n = hashes_at(size, level);
    let full = n / TILE_WIDTH;
    let width = match index {
        i if i < full => TILE_WIDTH as u16,
        i if i == full && !n.is_multiple_of(TILE_WIDTH) => (n % TILE_WIDTH) as u16,
        _ => return None,
    };
    Some(TileId {
        level,
        index,
        width,
    })
}

/// Splits tile bytes into hashes; `None` unless a whole number of hashes.
pub fn hashes(bytes: &[u8]) -> Option<Vec<TreeHash>> {
    if !bytes.len().is_multiple_of(HASH_LEN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_LEN)
            .filter_map(|c| c.try_into().ok())
            .collect(),
    )
}

/// Grows the tiles of a tree one leaf at a time and says which changed.
#[derive(Debug, Clone, Default)]
pub struct TileBuilder {
    size: u64,
    /// The hashes of each level's partial tile.
    partial: Vec<Vec<TreeHash>>,
    /// Tiles that became full since the last `take_changed`, with their hashes.
    full: Vec<(TileId, Vec<u8>)>,
    /// Levels whose partial tile changed since the last `take_changed`.
    touched: BTreeSet<u8>,
}

impl TileBuilder {
    /// Continues a tree of `size` leaves whose partial tiles (as
    /// `partial_tiles(size)` lists them) hold `partial`.
    pub fn resume(size: u64, partial: Vec<(TileId, Vec<TreeHash>)>) -> Result<Self, String> {
        let mut b = TileBuilder {
            size,
            ..Default::default()
        };
        let want = partial_tiles(size);
        if want.len() != partial.len() {
            return Err(format!(
                "a tree of {size} leaves has {} partial tiles, {} were given",
                want.len(),
                partial.len()
            ));
        }
        for (id, (got, hashes)) in want.iter().zip(partial) {
            if *id != got || hashes.len() != usize::from(id.width) {
                return Err(format!("partial tile {got} does not fit a tree of {size}"));
            }
            let level = usize::from(id.level);
            if b.partial.len() <= level {
                b.partial.resize(level + 1, Vec::new());
            }
            b.partial[level] = hashes;
        }
        Ok(b)
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: TreeHash) {
        let mut hash = leaf;
        let mut level = 0u8;
        loop {
            let l = usize::from(level);
            if self.partial.len() <= l {
                self.partial.resize(l + 1, Vec::new());
            }
            self.partial[l].push(hash);
            self.touched.insert(level);
            if self.partial[l].len() as u64 != TILE_WIDTH {
                break;
            }
            let full = std::mem::take(&mut self.partial[l]);
            hash = root(&full);
            let index = hashes_at(self.size + 1, level) / TILE_WIDTH - 1;
            self.full.push((
                TileId {
                    level,
                    index,
                    width: TILE_WIDTH as u16,
                },
                full.concat(),
            ));
            level += 1;
        }
        self.size += 1;
    }

    /// The tiles changed since the last call, with their current hashes:
    /// every tile that became full, then each changed partial tile.
    pub fn take_changed(&mut self) -> Vec<(TileId, Vec<u8>)> {
        let mut out = std::mem::take(&mut self.full);
        for level in std::mem::take(&mut self.touched) {
            let hashes = &self.partial[usize::from(level)];
            if hashes.is_empty() {
                continue;
            }
            let n = hashes_at(self.size, level);
            out.push((
                TileId {
                    level,
                    index: n / TILE_WIDTH,
                    width: hashes.len() as u16,
                },
                hashes.concat(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
