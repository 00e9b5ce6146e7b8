//! Helpers for the tests that run several edges on one JetStream log:
//! waiting for what every node will see, and auditing the shared log.

use std::time::Duration;

use anyhow::{bail, ensure, Result};

use super::{beamd, text};

/// Polls `check` every 100 ms for up to `within`.
pub async fn eventually_within<F, Fut>(what: &str, within: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not within {within:?}")
}

/// Polls `check` for up to 15 s.
pub async fn eventually<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    eventually_within(what, Duration::from_secs(15), check).await
}

/// `beamd audit --log URL` passes.
pub async fn audits_clean(url: String) -> Result<()> {
    let audit = tokio::task::spawn_blocking(move || beamd(&["audit", "--log", &url])).await?;
    ensure!(
        audit.status.success() && text(&audit.stdout).starts_with("audit ok"),
        "{} {}",
        text(&audit.stdout),
        text(&audit.stderr)
    );
    Ok(())
}

/// The events `beamd replay --log URL` prints, as JSON values.
pub async fn replayed(url: String) -> Result<Vec<serde_json::Value>> {
    let out = tokio::task::spawn_blocking(move || beamd(&["replay", "--log", &url])).await?;
    ensure!(out.status.success(), "replay: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}
