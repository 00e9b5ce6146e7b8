//! `beamd audit` on real data dirs: clean logs pass and print the RFC 6962
//! tree head over the stored events, one tampered byte fails and names its
//! seq, and snapshots are checked against the fold of the log (those of a
//! retired kind by their hash only).

use crate::common;

use anyhow::Result;
use beamd::data_dir::DataDir;
use beamd::projections::{LogSummary, RETIRED_KINDS};
use beamd_events::envelope::hex;
use beamd_events::log::Store as _;
use beamd_events::merkle::{leaf_hash, root};
use beamd_snapshots::{Fold, Snapshot, SnapshotStore};
use common::{beamd, populate, text};

fn audit(dir: &std::path::Path) -> (bool, String, String) {
    let out = beamd(&["audit", "--data-dir", dir.to_str().unwrap()]);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn a_clean_log_passes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 60, &[10, 60]).await?;
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("audit ok: 60 events, 3 streams, 2 snapshots match"),
        "{stdout}"
    );
    // The tree head is RFC 6962's over the stored bytes of every event.
    let leaves: Vec<_> = {
        let data = DataDir::open_existing(dir.path())?;
        let store = data.log_store()?;
        (1..=60)
            .map(|seq| Ok(leaf_hash(&store.get(seq)?.unwrap())))
            .collect::<Result<_>>()?
    };
    let expected = format!("tree size 60 root {}", hex(&root(&leaves)));
    assert!(stdout.contains(&expected), "{stdout} lacks {expected}");
    Ok(())
}

#[tokio::test]
async fn one_tampered_byte_fails_and_names_its_seq() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 40, &[]).await?;
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..12 {
        let seq = rng.u64(1..=40);
        let original = {
            let data = DataDir::open_existing(dir.path())?;
            let store = data.log_store()?;
            let value = store.get(seq)?.unwrap();
            let mut bad = value.clone();
            let at = rng.usize(0..bad.len());
            bad[at] ^= 1 << rng.u8(0..8);
            store.overwrite_record(seq, &bad)?;
            data.db().flush()?;
            value
        };
        let (ok, _, stderr) = audit(dir.path());
        assert!(!ok, "a flipped byte at seq {seq} went unnoticed");
        assert!(
            stderr.contains(&format!("FAILED at seq {seq}:")),
            "seq {seq}: {stderr}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line on stderr: {stderr}"
        );
        {
            let data = DataDir::open_existing(dir.path())?;
            data.log_store()?.overwrite_record(seq, &original)?;
            data.db().flush()?;
        }
        assert!(
            audit(dir.path()).0,
            "restoring the byte makes seq {seq} pass again"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_record_is_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 20, &[]).await?;
    {
        let data = DataDir::open_existing(dir.path())?;
        data.log_store()?.remove_record(13)?;
        data.db().flush()?;
    }
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("FAILED at seq 13: record is missing"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_snapshot_that_is_not_the_fold_fails_at_its_seq() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 30, &[30]).await?;
    {
        // A well-formed snapshot at seq 20 holding the state of seq 30.
        let data = DataDir::open_existing(dir.path())?;
        let snapshots = data.snapshots()?;
        let at30 = snapshots.latest(LogSummary::KIND, "all")?.unwrap();
        let state: LogSummary = at30.decode()?;
        snapshots.save(&Snapshot::new(LogSummary::KIND, "all", 20, 0, &state)?)?;
        snapshots.flush()?;
    }
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("FAILED at seq 20: snapshot log_summary/all does not equal the fold"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_snapshot_of_a_retired_kind_is_checked_by_its_hash_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 30, &[30]).await?;
    // What an edge left under a kind no longer read: its state is not the
    // fold of anything this edge knows.
    let retired = Snapshot::new(RETIRED_KINDS[0], "all", 25, 0, &vec![1u64, 2, 3])?;
    {
        let data = DataDir::open_existing(dir.path())?;
        let snapshots = data.snapshots()?;
        snapshots.save(&retired)?;
        snapshots.flush()?;
    }
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("audit ok: 30 events, 3 streams, 1 snapshots match"),
        "{stdout}"
    );
    {
        let data = DataDir::open_existing(dir.path())?;
        let snapshots = data.snapshots()?;
        let mut tampered = retired.clone();
        tampered.state[1] ^= 0x10;
        snapshots.save(&tampered)?;
        snapshots.flush()?;
    }
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(stderr.contains("FAILED at seq 25:"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_tampered_snapshot_fails_at_its_seq() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 30, &[15]).await?;
    {
        let data = DataDir::open_existing(dir.path())?;
        let snapshots = data.snapshots()?;
        let (key, value) = snapshots.tree().iter().next().unwrap()?;
        let mut snap: Snapshot = rmp_serde::from_slice(&value)?;
        snap.state[3] ^= 0x10;
        snapshots.tree().insert(key, rmp_serde::to_vec(&snap)?)?;
        snapshots.flush()?;
    }
    let (ok, _, stderr) = audit(dir.path());
    assert!(!ok);
    assert!(stderr.contains("FAILED at seq 15:"), "{stderr}");
    Ok(())
}

#[test]
fn a_dir_without_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = beamd(&[
        "audit",
        "--data-dir",
        dir.path().join("nope").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("beamd: error: no beamd data in"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1);
}

/// Starts an edge on `dir` and waits for it to exit (30 s at most): start-up
/// over a damaged log must end, never serve.
fn edge_start(dir: &std::path::Path) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args(["edge", "--data-dir", dir.to_str().unwrap(), "--no-api"])
        .args(["--transport", "tcp", "--listen", "127.0.0.1:0"])
        .args(["--public-host", "127.0.0.1"])
        .env("BEAMD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// Runs an edge on `dir` until it is up, then stops it with SIGTERM (it
/// snapshots its projections on the way out).
fn edge_once(dir: &std::path::Path) -> Result<()> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args(["edge", "--data-dir", dir.to_str().unwrap(), "--no-api"])
        .args(["--transport", "tcp", "--listen", "127.0.0.1:0"])
        .args(["--public-host", "127.0.0.1"])
        .env("BEAMD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let up = lines.by_ref().any(|l| l.contains(" up; "));
    anyhow::ensure!(up, "the edge never said it was up");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    // Read on, so that its last lines do not meet a closed pipe.
    lines.for_each(drop);
    anyhow::ensure!(child.wait()?.success(), "the edge exits 0 on SIGTERM");
    Ok(())
}

#[tokio::test]
async fn the_edge_refuses_to_start_over_a_flipped_bit_in_committed_history() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 40, &[]).await?;
    // A first run leaves snapshots past the damage below, so replay alone
    // would never read it: the start-up check has to.
    edge_once(dir.path())?;
    let (ok, stdout, stderr) = audit(dir.path());
    assert!(ok && !stdout.contains(" 0 snapshots"), "{stdout}{stderr}");
    let last = DataDir::open_existing(dir.path())?
        .log_store()?
        .last_seq()?;
    let seq = 17;
    {
        let data = DataDir::open_existing(dir.path())?;
        let store = data.log_store()?;
        let mut bad = store.get(seq)?.unwrap();
        let at = bad.len() / 2;
        bad[at] ^= 0x10;
        store.overwrite_record(seq, &bad)?;
        data.db().flush()?;
    }
    let (status, stderr) = edge_start(dir.path());
    assert!(
        status.is_some_and(|c| c != 0),
        "the edge must exit with an error, not serve ({status:?}): {stderr}"
    );
    assert!(stderr.contains(&format!("seq {seq}")), "{stderr}");
    // Nothing was truncated: every record after the damaged one is still there.
    let data = DataDir::open_existing(dir.path())?;
    let store = data.log_store()?;
    for s in 1..=last {
        assert!(store.get(s)?.is_some(), "record {s} is gone");
    }
    Ok(())
}
