//! A saved checkpoint: a directory in the tlog-tiles static layout
//! (`checkpoint`, `key`, `tile/<L>/<N>[.p/<W>]`) that an auditor keeps and
//! `beamd audit --since` reads. The tiles let the audit name the first seq
//! the present log differs at; a checkpoint alone proves only that it does.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use beamd_events::merkle::{range_root, Subtrees, TreeHash};
use beamd_events::tiles::{locate, subtree_of, tile_at, tiles_for, TileId};

use super::checkpoint::SignedCheckpoint;
use super::note::Verifier;
use crate::client::ApiClient;

/// The checkpoint's file in a saved directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The verifier key's file in a saved directory.
pub const KEY_FILE: &str = "key";

/// The tiles of a saved tree of `size` events under `dir`.
pub struct SavedTiles {
    dir: PathBuf,
    size: u64,
}

impl SavedTiles {
    /// The tiles under `dir` for a tree of `size`.
    pub fn new(dir: &Path, size: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            size,
        }
    }

    /// The hashes of one tile, as saved (exactly its width).
    pub fn tile(&self, id: TileId) -> Result<Vec<u8>> {
        let path = self.dir.join(id.path());
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.len() != usize::from(id.width) * 32 {
            bail!(
                "{} holds {} bytes, not {}",
                path.display(),
                bytes.len(),
                usize::from(id.width) * 32
            );
        }
        Ok(bytes)
    }

    /// Whether every tile of the tree is there.
    pub fn complete(&self) -> bool {
        tiles_for(self.size)
            .iter()
            .all(|id| self.dir.join(id.path()).is_file())
    }

    /// The root the saved tiles give.
    pub fn root(&self) -> Result<TreeHash> {
        range_root(self, 0, self.size)
    }

    /// Leaf hashes `[from, from + 256)` clipped to the tree: one level-0 tile.
    pub fn leaves_of_tile(&self, index: u64) -> Result<Vec<TreeHash>> {
        let id = tile_at(self.size, 0, index).context("no such tile")?;
        let bytes = self.tile(id)?;
        Ok(bytes
            .chunks_exact(32)
            .filter_map(|c| c.try_into().ok())
            .collect())
    }
}

impl Subtrees for SavedTiles {
    type Error = anyhow::Error;
    fn perfect(&self, height: u32, index: u64) -> Result<TreeHash> {
        let (level, tile, offset, count) = locate(height, index);
        let id = tile_at(self.size, level, tile)
            .with_context(|| format!("a tree of {} has no tile {level}/{tile}", self.size))?;
        subtree_of(&self.tile(id)?, offset, count).with_context(|| format!("tile {id} is short"))
    }
}

/// Downloads the tiles of `signed`'s tree into `dir`, checks they give its
/// root, then writes the key and, last, the checkpoint.
pub async fn save(
    client: &mut ApiClient,
    dir: &Path,
    signed: &SignedCheckpoint,
    verifier: &Verifier,
) -> Result<usize> {
    let size = signed.checkpoint.size;
    let tiles = tiles_for(size);
    let bar = crate::progress::events_bar(tiles.len() as u64 * 256, "tiles");
    for id in &tiles {
        let path = dir.join(id.path());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let bytes = client.get(&format!("/log/{}", id.path())).await?;
        if bytes.len() != usize::from(id.width) * 32 {
            bail!("the API sent {} bytes for {id}", bytes.len());
        }
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bar.inc(256);
    }
    bar.finish_and_clear();
    let root = SavedTiles::new(dir, size).root()?;
    if root != signed.checkpoint.root {
        bail!(
            "the tiles the API served do not give the checkpoint's root: not saving the checkpoint"
        );
    }
    std::fs::write(dir.join(KEY_FILE), format!("{}\n", verifier.encode()))?;
    std::fs::write(dir.join(CHECKPOINT_FILE), &signed.note)?;
    Ok(tiles.len())
}

/// A saved checkpoint given as a file or a directory: the note, where its
/// tiles are (when saved with them), and the key saved beside it.
pub struct Saved {
    /// The note's text.
    pub note: String,
    /// The directory holding `tile/`, if there is one.
    pub dir: Option<PathBuf>,
    /// The verifier key saved beside it, if any.
    pub key: Option<String>,
}

/// Reads a saved checkpoint: `PATH` a directory (with `checkpoint`) or a checkpoint file.
pub fn load(path: &Path) -> Result<Saved> {
    let (file, dir) = if path.is_dir() {
        (path.join(CHECKPOINT_FILE), path.to_path_buf())
    } else {
        let parent = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (path.to_path_buf(), parent)
    };
    let note = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let key = std::fs::read_to_string(dir.join(KEY_FILE)).ok();
    let dir = dir.join("tile").is_dir().then_some(dir);
    Ok(Saved { note, dir, key })
}

/// The verifier from `--public-key` (the key's text or a file holding it).
pub fn verifier_from(arg: &str) -> Result<Verifier> {
    let text = match Verifier::parse(arg) {
        Ok(v) => return Ok(v),
        Err(_) => std::fs::read_to_string(arg).with_context(|| {
            format!("--public-key {arg:?} is neither a verifier key nor a readable file")
        })?,
    };
    Verifier::parse(&text).with_context(|| format!("{arg} does not hold a verifier key"))
}
