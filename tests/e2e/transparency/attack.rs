//! The attacker who controls the disk: after an auditor saved a checkpoint
//! (`beamd checkpoint --save`), one old event is rewritten and the whole
//! chain and tree recomputed, or the tail is cut off. `beamd audit` alone
//! passes; `beamd audit --since` fails and names the seq. The edge itself,
//! restarted over the rewritten log, refuses to sign a checkpoint that does
//! not extend the one it signed before.

use crate::common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use beamd::data_dir::DataDir;
use beamd_events::envelope::{decode_record, encode_record};
use beamd_events::log::{EncodedRecord, Marker, Store};
use beamd_events::merkle::leaf_hash;
use beamd_events::tiles::{SledTiles, TileBuilder};
use beamd_events::GENESIS_HASH;
use common::api::{tenant, Api};
use common::tlog::stop;
use common::tunnel::{start_edge, ADMIN_TOKEN};
use common::{beamd, text};

/// An edge with some history, a checkpoint saved by the auditor, stopped.
async fn history(dir: &Path, saved: &Path) -> Result<u64> {
    let mut edge = start_edge(
        dir,
        "tcp",
        "127.0.0.1:0",
        &["--checkpoint-interval", "100ms", "--checkpoint-every", "1"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    for slug in ["one", "two", "three"] {
        let (_, t) = tenant(&admin, slug).await?;
        common::api::new_token(&t, "x").await?;
    }
    let api = format!("http://{}", edge.api);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let size = loop {
        let out = beamd(&[
            "checkpoint",
            "--api",
            &api,
            "--key",
            ADMIN_TOKEN,
            "--save",
            saved.to_str().context("path")?,
        ]);
        anyhow::ensure!(out.status.success(), "{}", text(&out.stderr));
        let size: u64 = text(&out.stdout).lines().nth(1).context("size")?.parse()?;
        if size >= 12 {
            break size;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "checkpoint stuck at {size}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop(&mut edge).await?;
    Ok(size)
}

/// What the attacker recomputes: the tree over the stored records; snapshots go.
fn recompute_tree(data: &DataDir) -> Result<()> {
    let store = data.log_store()?;
    let tiles = SledTiles::open(data.db())?;
    tiles.clear()?;
    let mut builder = TileBuilder::default();
    for (_, bytes) in store.scan(1, u64::MAX, usize::MAX)? {
        builder.push(leaf_hash(&bytes));
    }
    tiles.write(builder.take_changed(), builder.size())?;
    data.db().drop_tree(beamd_snapshots::SNAPSHOT_TREE)?;
    data.db().flush()?;
    Ok(())
}

/// Backdates event `k` by a millisecond and re-chains everything after it.
fn rewrite(dir: &Path, k: u64) -> Result<()> {
    let data = DataDir::open_existing(dir)?;
    let store = data.log_store()?;
    let mut prev = match k {
        1 => GENESIS_HASH,
        _ => decode_record(k - 1, &store.get(k - 1)?.context("k-1")?)?.hash,
    };
    let mut records = Vec::new();
    for (seq, bytes) in store.scan(k, u64::MAX, usize::MAX)? {
        let env = decode_record(seq, &bytes)?;
        let at = if seq == k { env.at - 1 } else { env.at };
        let (hash, bytes) = encode_record(seq, at, &env.stream, env.version, &env.event, &prev)?;
        records.push(EncodedRecord {
            seq,
            stream: env.stream,
            version: env.version,
            bytes,
        });
        prev = hash;
    }
    let last = records.last().context("records")?.seq;
    // Records are stored in blocks of consecutive seqs: the attacker cuts the
    // log at `k` and appends the recomputed records.
    store.truncate_from(k)?;
    store.write(
        &records,
        Marker {
            seq: last,
            hash: prev,
        },
    )?;
    recompute_tree(&data)
}

/// Cuts the log after seq `keep`.
fn truncate(dir: &Path, keep: u64) -> Result<()> {
    let data = DataDir::open_existing(dir)?;
    let store = data.log_store()?;
    store.truncate_from(keep + 1)?;
    let hash = decode_record(keep, &store.get(keep)?.context("keep")?)?.hash;
    store.write(&[], Marker { seq: keep, hash })?;
    recompute_tree(&data)
}

fn audit(dir: &Path, since: Option<&Path>) -> (bool, String, String) {
    let mut args = vec!["audit", "--data-dir", dir.to_str().unwrap_or_default()];
    if let Some(s) = since {
        args.extend(["--since", s.to_str().unwrap_or_default()]);
    }
    let out = beamd(&args);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()?;
    anyhow::ensure!(status.success(), "cp -a");
    Ok(())
}

#[tokio::test]
async fn a_saved_checkpoint_catches_a_recomputed_history_and_names_the_seq() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (dir, saved) = (work.path().join("edge"), work.path().join("saved"));
    let size = history(&dir, &saved).await?;
    let (ok, stdout, stderr) = audit(&dir, Some(&saved));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("checkpoint of {size} events")),
        "{stdout}"
    );

    // The tail cut off.
    let cut = work.path().join("cut");
    copy_dir(&dir, &cut)?;
    truncate(&cut, size - 3)?;
    let (ok, _, stderr) = audit(&cut, None);
    assert!(ok, "the truncated log is self-consistent: {stderr}");
    let (ok, _, stderr) = audit(&cut, Some(&saved));
    assert!(!ok);
    assert!(
        stderr.contains(&format!("first bad seq {}", size - 2)),
        "{stderr}"
    );

    // One old event rewritten, the chain and the tree recomputed.
    let k = 5;
    rewrite(&dir, k)?;
    let (ok, stdout, stderr) = audit(&dir, None);
    assert!(ok, "the recomputed log passes a plain audit: {stderr}");
    assert!(stdout.contains("audit ok"), "{stdout}");
    let (ok, _, stderr) = audit(&dir, Some(&saved));
    assert!(!ok);
    assert!(stderr.contains(&format!("first bad seq {k}")), "{stderr}");
    // The bare checkpoint (no tiles) still catches it, without the seq.
    let bare = work.path().join("checkpoint.txt");
    std::fs::copy(saved.join("checkpoint"), &bare)?;
    let key = saved.join("key");
    let out = beamd(&[
        "audit",
        "--data-dir",
        dir.to_str().context("dir")?,
        "--since",
        bare.to_str().context("bare")?,
        "--public-key",
        key.to_str().context("key")?,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does NOT extend"),
        "{}",
        text(&out.stderr)
    );

    // The edge, restarted over the rewritten log, signs nothing that does not extend its last checkpoint.
    let mut edge = start_edge(
        &dir,
        "tcp",
        "127.0.0.1:0",
        &["--checkpoint-interval", "100ms"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    tenant(&admin, "four").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !edge.proc.stderr_contains("does not extend the checkpoint") {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the edge did not refuse to sign"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = admin.get("/api/v1/log/checkpoint").await?;
    assert_eq!(
        served.text.lines().nth(1),
        Some(size.to_string().as_str()),
        "{}",
        served.text
    );
    stop(&mut edge).await?;
    Ok(())
}
