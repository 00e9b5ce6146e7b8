//! The stored tree and the checkpoint cadence: the edge builds the tree over
//! a log that has none, `beamd audit` checks every stored tile against the
//! events and names the first seq a damaged one covers, a dropped tree is
//! rebuilt on the next start and signed on as an extension, and checkpoints
//! come after N events or T seconds, whichever is first.

use crate::common;

use std::time::Duration;

use anyhow::{Context, Result};
use beamd::data_dir::DataDir;
use beamd_events::tiles::{SledTiles, TILES_TREE};
use common::api::{tenant, Api};
use common::tlog::{checkpoint, checkpoint_of, stop};
use common::tunnel::{start_edge, ADMIN_TOKEN};
use common::{beamd, populate, text};

fn audit(dir: &std::path::Path) -> (bool, String, String) {
    let out = beamd(&["audit", "--data-dir", dir.to_str().unwrap_or_default()]);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Runs an edge over `dir` until it signed a checkpoint of `size` events, then stops it.
async fn edge_until_signed(dir: &std::path::Path, size: u64) -> Result<u64> {
    let mut edge = start_edge(
        dir,
        "tcp",
        "127.0.0.1:0",
        &["--checkpoint-interval", "100ms"],
    )?;
    let (_, signed) = checkpoint_of(
        &Api::new(edge.api, ADMIN_TOKEN),
        size,
        Duration::from_secs(60),
    )
    .await?;
    stop(&mut edge).await?;
    Ok(signed)
}

/// Flips one bit of a stored tile; returns the original bytes.
fn damage(dir: &std::path::Path, level: u8, index: u64, at: usize) -> Result<Vec<u8>> {
    let data = DataDir::open_existing(dir)?;
    let tiles = SledTiles::open(data.db())?;
    let original = tiles.tile(level, index)?.context("tile")?;
    let mut bad = original.clone();
    bad[at] ^= 0x10;
    let size = tiles.size()?;
    tiles.write(
        vec![(
            beamd_events::tiles::TileId {
                level,
                index,
                width: (bad.len() / 32) as u16,
            },
            bad,
        )],
        size,
    )?;
    data.db().flush()?;
    Ok(original)
}

fn restore(dir: &std::path::Path, level: u8, index: u64, bytes: Vec<u8>) -> Result<()> {
    let data = DataDir::open_existing(dir)?;
    let tiles = SledTiles::open(data.db())?;
    let size = tiles.size()?;
    let width = (bytes.len() / 32) as u16;
    tiles.write(
        vec![(
            beamd_events::tiles::TileId {
                level,
                index,
                width,
            },
            bytes,
        )],
        size,
    )?;
    data.db().flush()?;
    Ok(())
}

#[tokio::test]
async fn the_stored_tree_is_built_checked_and_rebuilt() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 600, &[]).await?;
    // The edge builds the tree over a log written without one.
    let signed = edge_until_signed(dir.path(), 600).await?;
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("; stored tree of "), "{stdout}");

    // A damaged leaf hash: leaf 259 (tile 0/001, hash 3) is seq 260.
    let original = damage(dir.path(), 0, 1, 3 * 32 + 5)?;
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(stderr.contains("FAILED at seq 260"), "{stderr}");
    restore(dir.path(), 0, 1, original)?;
    assert!(audit(dir.path()).0, "restored");

    // A damaged level-1 hash (the root of leaves 256..512) is named by its first seq, 257.
    let original = damage(dir.path(), 1, 0, 32 + 9)?;
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(stderr.contains("FAILED at seq 257"), "{stderr}");
    restore(dir.path(), 1, 0, original)?;

    // A dropped tree is rebuilt on the next start and signed on as an extension.
    {
        let data = DataDir::open_existing(dir.path())?;
        data.db().drop_tree(TILES_TREE)?;
        data.db().flush()?;
    }
    let again = edge_until_signed(dir.path(), signed + 1).await?;
    assert!(again > signed);
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("; stored tree of "), "{stdout}");
    Ok(())
}

#[tokio::test]
async fn checkpoints_come_after_n_events_or_t_seconds() -> Result<()> {
    // Every 6 events, the interval out of reach.
    let dir = tempfile::tempdir()?;
    let mut edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--checkpoint-every", "6", "--checkpoint-interval", "1h"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    // The first checkpoint is signed at start, over what the log holds then.
    let (_, first) = checkpoint_of(&admin, 0, Duration::from_secs(30)).await?;
    let mut sizes = vec![first];
    for slug in ["a", "b", "c", "d", "e", "f"] {
        tenant(&admin, slug).await?;
        let (_, size) = checkpoint(&admin).await?;
        if size != *sizes.last().context("sizes")? {
            sizes.push(size);
        }
    }
    let (_, last) = checkpoint_of(&admin, first + 6, Duration::from_secs(30)).await?;
    if last != *sizes.last().context("sizes")? {
        sizes.push(last);
    }
    assert!(sizes.len() >= 2, "{sizes:?}");
    for pair in sizes.windows(2) {
        assert!(
            pair[1] - pair[0] >= 6,
            "signed before 6 new events: {sizes:?}"
        );
    }
    stop(&mut edge).await?;

    // Every 200 ms, the count out of reach.
    let dir = tempfile::tempdir()?;
    let mut edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--checkpoint-every",
            "1000000",
            "--checkpoint-interval",
            "200ms",
        ],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, first) = checkpoint_of(&admin, 0, Duration::from_secs(30)).await?;
    tenant(&admin, "solo").await?;
    checkpoint_of(&admin, first + 1, Duration::from_secs(30)).await?;
    stop(&mut edge).await?;
    Ok(())
}
