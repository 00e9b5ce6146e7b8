//! The README's curl examples, run as written against a live edge, so they
//! stay true. curl and jq are installed with apt-get when missing.

use crate::common;

use std::process::Command;

use anyhow::{ensure, Context, Result};
use common::tunnel::{start_edge, ADMIN_TOKEN};

#[test]
fn the_readme_curl_examples_work() -> Result<()> {
    common::tools::debian(&["/usr/bin/curl"], &["curl"])?;
    common::tools::debian(&["/usr/bin/jq"], &["jq"])?;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let block = readme
        .split("<!-- api-examples -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /api-examples -->").next())
        .context("the README's api-examples block")?;
    let script = block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    ensure!(
        script.matches("curl ").count() >= 10,
        "the block holds the examples"
    );
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("BEAMD_API", format!("http://{}", edge.api))
        .env("BEAMD_KEY", ADMIN_TOKEN)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the examples failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "\"slug\"",
        "\"series\"",
        "\"revoked\":true",
        "_beamd-challenge.app.example.com",
        "beamd://",
        "beamd_tunnels_online",
    ] {
        ensure!(
            stdout.contains(expected),
            "the output shows {expected}:\n{stdout}"
        );
    }
    Ok(())
}
