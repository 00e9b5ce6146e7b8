//! `beamd edge` as a real process: it joins, heartbeats, leaves on SIGTERM,
//! snapshots on shutdown, and a restart loads the snapshot.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use common::{beamd, text};

fn run_edge_until_sigterm(dir: &str) -> Result<Vec<String>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args([
            "edge",
            "--data-dir",
            dir,
            "--heartbeat-secs",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--public-host",
            "127.0.0.1",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut up = String::new();
    for line in out.by_ref() {
        up = line?;
        if up.contains(" up; ") {
            break;
        }
    }
    ensure!(up.contains(" up; "), "the edge never said it was up: {up}");
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).context("child pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    let mut lines = vec![up];
    lines.extend(out.map_while(Result::ok));
    ensure!(child.wait()?.success(), "the edge exits 0 on SIGTERM");
    Ok(lines)
}

#[test]
fn joins_heartbeats_leaves_and_restarts_from_a_snapshot() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_str().unwrap();
    let first = run_edge_until_sigterm(d)?;
    assert!(
        first.last().unwrap().contains("stopped (terminate)"),
        "{first:?}"
    );

    let out = beamd(&["replay", "--data-dir", d]);
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"NodeJoined"));
    assert!(types.contains(&"NodeHeartbeat"), "{types:?}");
    assert_eq!(types.last(), Some(&"NodeLeft"));
    assert_eq!(events.last().unwrap()["event"]["reason"], "terminate");

    let audit = beamd(&["audit", "--data-dir", d]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    assert!(
        text(&audit.stdout).contains("12 snapshots match"),
        "{}",
        text(&audit.stdout)
    );

    // The second start folds only what came after the shutdown snapshot.
    let second = run_edge_until_sigterm(d)?;
    assert!(second[0].contains("0 events replayed"), "{second:?}");
    let audit = beamd(&["audit", "--data-dir", d]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    assert!(
        text(&audit.stdout).contains("22 snapshots match"),
        "{}",
        text(&audit.stdout)
    );
    Ok(())
}

#[test]
fn a_data_dir_in_use_is_refused_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args([
            "edge",
            "--data-dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--public-host",
            "127.0.0.1",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
    out.find(|l| l.as_ref().map(|l| l.contains(" up; ")).unwrap_or(false))
        .context("edge started")??;
    let second = beamd(&["audit", "--data-dir", d]);
    child.kill()?;
    child.wait()?;
    assert!(!second.status.success());
    assert!(
        text(&second.stderr).contains("in use by another beamd process"),
        "{}",
        text(&second.stderr)
    );
    Ok(())
}
