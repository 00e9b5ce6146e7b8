//! The inspector seen from outside: requests as listed, and their details
//! once written (details are written off the data path, a moment later).

use std::time::Duration;

use anyhow::{Context, Result};

use super::api::{Answer, Api};

/// The newest listed request once there are `n`, and its detail once it is
/// `want` (details are written off the data path).
pub async fn newest(api: &Api, n: usize, want: &str) -> Result<(u64, Answer)> {
    for _ in 0..150 {
        let listed = api.get("/api/v1/requests?limit=1000").await?;
        let list = listed.body["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.len() >= n {
            let seq = list[0]["seq"].as_u64().context("seq")?;
            // By id: requests of one window share their event's seq.
            let id = list[0]["id"].as_str().context("id")?;
            let detail = api.get(&format!("/api/v1/requests/{id}")).await?;
            if detail.body["detail"] == want {
                return Ok((seq, detail));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no {n}th request with detail {want}")
}

/// How many requests are listed.
pub async fn count_listed(api: &Api) -> Result<usize> {
    let all = api.get("/api/v1/requests?limit=1000").await?;
    Ok(all.body["requests"].as_array().map_or(0, Vec::len))
}
