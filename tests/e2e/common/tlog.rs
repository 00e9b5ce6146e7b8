//! Helpers of the transparency-log tests: checkpoints over the API, a clean stop.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::api::Api;
use super::tunnel::Edge;

/// The served checkpoint's note and tree size.
pub async fn checkpoint(api: &Api) -> Result<(String, u64)> {
    let got = api.get("/api/v1/log/checkpoint").await?;
    ensure!(got.status == 200, "checkpoint: {}", got.text);
    let size = got.text.lines().nth(1).context("size line")?.parse()?;
    Ok((got.text, size))
}

/// Whether the edge answers 503: no checkpoint signed yet.
pub async fn not_signed_yet(api: &Api) -> Result<bool> {
    Ok(api.get("/api/v1/log/checkpoint").await?.status == 503)
}

/// The first served checkpoint of at least `size` events, within `within`.
pub async fn checkpoint_of(api: &Api, size: u64, within: Duration) -> Result<(String, u64)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        // Just after a start the keeper (a thread of its own) may not have
        // signed its first checkpoint yet: 503 until it has.
        let got = match not_signed_yet(api).await? {
            true => 0,
            false => {
                let (note, got) = checkpoint(api).await?;
                if got >= size {
                    return Ok((note, got));
                }
                got
            }
        };
        ensure!(
            std::time::Instant::now() < deadline,
            "no checkpoint of {size} events within {within:?}: {got}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops an edge with SIGINT and waits for it to exit.
pub async fn stop(edge: &mut Edge) -> Result<()> {
    edge.proc.signal(rustix::process::Signal::INT)?;
    ensure!(
        edge.proc.exited_within(Duration::from_secs(30)).await?,
        "the edge did not stop"
    );
    Ok(())
}
