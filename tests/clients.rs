//! Clients no one here wrote, against a live edge: what their users would
//! run. A tool that is missing is installed (PyPI into a venv under
//! target/, Debian's packages with apt-get); a failed install fails the
//! test: it never skips.
//!
//! - schemathesis fuzzes the server from its own `/api/v1/openapi.json`,
//!   with a valid key, and must find no server error and no response that
//!   breaks the schema.

mod common;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use std::sync::{Arc, Mutex};

use common::dns::dns_server;
use common::tunnel::{start_edge, ADMIN_TOKEN};

const VERSION: &str = "4.32.5";

/// The schemathesis executable, installed if it is not there yet.
fn schemathesis() -> Result<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv");
    let exe = venv.join("bin/schemathesis");
    let wanted = format!("schemathesis, version {VERSION}");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&wanted))
        .unwrap_or(false);
    if !installed {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("python3 is needed to install schemathesis")?;
        ensure!(made.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", &format!("schemathesis=={VERSION}")])
            .status()
            .context("pip")?;
        ensure!(pip.success(), "pip install schemathesis=={VERSION} failed");
    }
    Ok(exe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() -> Result<()> {
    let exe = tokio::task::spawn_blocking(schemathesis).await??;
    // Domain checks ask this server, never one off the machine.
    let dns = dns_server("app.example.test", Arc::new(Mutex::new(String::new()))).await?;
    let resolver = format!("127.0.0.1:{dns}");
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--dns-resolver", &resolver],
    )?;
    let schema = format!("http://{}/api/v1/openapi.json", edge.api);
    let mut run = Command::new(exe);
    run.current_dir(dir.path())
        .args(["run", &schema, "-H"])
        .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-time",
            "60",
            "--workers",
            "1",
            "--seed",
            "1",
            // The live feed answers a stream that lasts until maxSeconds;
            // tests/feed.rs checks it.
            "--exclude-path",
            "/api/v1/events/stream",
        ]);
    let out = tokio::task::spawn_blocking(move || run.output()).await??;
    let text = String::from_utf8_lossy(&out.stdout);
    let tail: String = text
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    ensure!(
        out.status.success(),
        "schemathesis failed:\n{tail}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(text.contains("passed"), "{tail}");
    Ok(())
}
