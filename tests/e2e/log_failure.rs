//! A failed write to the event log is fatal and loses nothing acknowledged:
//! the edge runs under a file-size limit (`prlimit --fsize`), so sled's
//! writes fail for real partway through a stream of API commands. The edge
//! must stop at once with a clear message; `beamd audit` is clean; and after
//! a restart without the limit every command that was acknowledged is there.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::api::{token_ids, Api};
use common::tunnel::{start_edge, ADMIN_TOKEN};
use common::{beamd, text};

/// Bytes any one file of the edge may reach: room for start-up and a few
/// dozen commands, not for hundreds.
const FILE_LIMIT: &str = "--fsize=150000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_edge_and_loses_nothing_acknowledged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_str().context("dir")?;
    let mut child = Command::new("prlimit")
        .arg(FILE_LIMIT)
        .arg(env!("CARGO_BIN_EXE_beamd"))
        .args([
            "edge",
            "--data-dir",
            d,
            "--transport",
            "tcp",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--public-host", "127.0.0.1", "--api-listen", "127.0.0.1:0"])
        .env("BEAMD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("BEAMD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("prlimit (util-linux) runs the edge")?;
    let mut api = None;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(addr) = line.strip_prefix("beamd edge: listening api on ") {
            api = Some(addr.parse()?);
        }
        if line.contains(" up; ") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let admin = Api::new(
        api.context("the edge printed its API address")?,
        ADMIN_TOKEN,
    );

    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..5_000 {
        match admin
            .send(
                "POST",
                "/api/v1/tokens",
                Some(&format!(r#"{{"label":"n{i}"}}"#)),
            )
            .await
        {
            Ok(a) if a.status == 201 => {
                acknowledged.push(a.body["id"].as_str().context("id")?.to_string())
            }
            Ok(a) => {
                refused = Some(format!("{} {}", a.status, a.text));
                break;
            }
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    ensure!(refused.is_some(), "5,000 commands fit under the file limit");
    ensure!(
        acknowledged.len() > 10,
        "only {} commands before the limit",
        acknowledged.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "the edge runs on after its log failed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut stderr)?;
    ensure!(!status.success(), "a failed log must not exit 0: {stderr}");
    ensure!(
        stderr.contains("beamd edge: the event log failed") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let audit = beamd(&["audit", "--data-dir", d]);
    ensure!(
        audit.status.success(),
        "audit after the failure: {}",
        text(&audit.stderr)
    );
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let stored = token_ids(&admin).await?;
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} of {} acknowledged tokens lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    Ok(())
}
