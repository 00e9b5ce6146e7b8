//! A disk filling up under the edge: the data dir lives on a small tmpfs of
//! its own, a ballast file eats the space down to under the edge's reserve,
//! and then: writes answer 507 with the JSON error, reads still answer, a
//! tunnel keeps carrying traffic, nothing panics; once the ballast is gone
//! the edge takes commands again, and everything acknowledged is there.
//!
//! Mounting needs root (as in CI); without it the test fails and says so.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::api::{error_of, Api};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};

/// A tmpfs mounted on a fresh directory, unmounted when dropped (before
/// the directory itself goes).
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .context("running mount")?;
        ensure!(
            out.status.success(),
            "mounting a tmpfs for the data dir needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Self {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills `dir`'s disk until `leave` bytes are free.
fn ballast(dir: &Path, leave: u64) -> Result<PathBuf> {
    let path = dir.join("ballast");
    let free = fs2::available_space(dir)?;
    let size = free.saturating_sub(leave) as usize;
    std::fs::write(&path, vec![0u8; size])?;
    Ok(path)
}

async fn mint(admin: &Api, label: &str) -> Result<(u16, String)> {
    let a = admin
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&format!(r#"{{"label":"{label}"}}"#)),
        )
        .await?;
    let id = a.body["id"].as_str().unwrap_or_default().to_string();
    if a.status != 201 {
        ensure!(
            a.status == 507 && error_of(&a) == "insufficient_storage",
            "a refused write is 507 insufficient_storage: {}",
            a.text
        );
    }
    Ok((a.status, id))
}

/// Mints until the answer is `status` (10 s at most); returns the ids minted.
async fn until(admin: &Api, status: u16, acked: &mut Vec<String>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let (got, id) = mint(admin, &format!("t{i}")).await?;
        if got == 201 {
            acked.push(id);
        }
        if got == status {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no {status} within 10 s (last {got})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_traffic_and_recovers() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let disk = Tmpfs::mount(64)?;
    let data = disk.path.join("data");
    let edge = start_edge(&data, "tcp", "127.0.0.1:0", &["--min-free-disk-mib", "16"])?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let local = echo_server().await?;
    let agent = start_agent(&edge, "tcp", local, &[])?;
    let mut acked = Vec::new();
    until(&admin, 201, &mut acked).await?;

    let fill = ballast(&disk.path, 8 << 20)?;
    until(&admin, 507, &mut acked).await?;
    let read = admin.get("/api/v1/tokens").await?;
    ensure!(read.status == 200, "reads go on: {}", read.text);
    let doc = admin.get("/api/v1/openapi.json").await?;
    ensure!(
        doc.body["paths"]["/api/v1/tokens"]["post"]["responses"]["507"].is_object(),
        "the document says writes may answer 507"
    );
    round_trip(agent.public, pattern(3, 64 * 1024)).await?;

    std::fs::remove_file(&fill)?;
    until(&admin, 201, &mut acked).await?;
    round_trip(agent.public, pattern(4, 64 * 1024)).await?;

    let all = admin.get("/api/v1/tokens?limit=100").await?;
    for id in &acked {
        ensure!(
            all.text.contains(id.as_str()),
            "acknowledged {id} is missing"
        );
    }
    let mut edge = edge;
    ensure!(edge.proc_alive(), "the edge is still running");
    ensure!(!edge.proc.stderr_contains("panicked"), "a panic");
    drop(agent);
    drop(edge);
    drop(disk);
    Ok(())
}
