//! `beamd replay` on a real data dir: ranges, stream filters and both formats.

use crate::common;

use anyhow::Result;
use common::{beamd, populate, text};

fn lines(args: &[&str]) -> Vec<serde_json::Value> {
    let out = beamd(args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test]
async fn prints_ranges_streams_and_formats() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 30, &[]).await?;
    let d = dir.path().to_str().unwrap();

    let all = lines(&["replay", "--data-dir", d]);
    assert_eq!(all.len(), 30);
    assert_eq!(all[0]["seq"], 1);
    assert_eq!(all[0]["type"], "TrafficRecorded");
    assert_eq!(all[0]["stream"], "tun_a");
    assert_eq!(all[3]["event"]["bytesIn"], 3);
    assert_eq!(all[1]["prevHash"], all[0]["hash"]);

    let range = lines(&["replay", "--data-dir", d, "--from", "5", "--to", "9"]);
    let seqs: Vec<u64> = range.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![5, 6, 7, 8, 9]);

    assert!(lines(&["replay", "--data-dir", d, "--from", "31"]).is_empty());
    assert_eq!(
        lines(&["replay", "--data-dir", d, "--from", "30", "--to", "99"]).len(),
        1
    );

    let node = lines(&[
        "replay",
        "--data-dir",
        d,
        "--stream",
        "node_x",
        "--from",
        "10",
    ]);
    assert!(node
        .iter()
        .all(|e| e["stream"] == "node_x" && e["type"] == "NodeHeartbeat"));
    let versions: Vec<u64> = node
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (4..=10).collect::<Vec<_>>());

    let out = beamd(&["replay", "--data-dir", d, "--format", "text", "--to", "3"]);
    let t = text(&out.stdout);
    assert_eq!(t.lines().count(), 3);
    assert!(
        t.lines()
            .nth(2)
            .unwrap()
            .contains("node_x@1  NodeHeartbeat"),
        "{t}"
    );
    assert!(t.contains("2025-11-24T"), "times are RFC 3339: {t}");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_one_line_and_a_failure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    populate(dir.path(), 3, &[]).await?;
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["replay", "--data-dir", d, "--stream", "has space"],
        vec!["replay", "--data-dir", "/nonexistent/beamd"],
    ] {
        let out = beamd(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    Ok(())
}
