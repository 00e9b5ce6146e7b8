//! The body store under a flood through a real HTTP tunnel: 64 requests
//! with 64 KiB bodies (about 4 MiB of details) against a 1 MiB cap. The
//! store's size, sampled from `/metrics` during the flood and read again
//! after, never passes the cap; the newest detail is kept, the oldest pruned.

use crate::common;

use anyhow::{Context, Result};
use beamd::data_dir::DataDir;
use beamd::inspector::{BodyLimits, BodyStore, BODIES_DIR};
use common::api::Api;
use common::http::{client, full, http_server, send, start_http_agent};
use common::inspect::newest;
use common::tlog::stop;
use common::tunnel::{start_edge, ADMIN_TOKEN};
use hyper::Request;

/// `beamd_body_store_bytes` from the edge's `/metrics`.
async fn store_bytes(api: &Api) -> Result<u64> {
    let m = api.get("/metrics").await?;
    Ok(m.text
        .lines()
        .find_map(|l| l.strip_prefix("beamd_body_store_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

#[tokio::test]
async fn the_body_store_stays_under_its_cap_under_a_flood() -> Result<()> {
    let _turn = common::turns::heavy().await;
    const CAP: u64 = 1 << 20;
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let args = [
        "--http-listen",
        "127.0.0.1:0",
        "--body-store-mib",
        "1",
        "--body-limit",
        "65536",
    ];
    let mut edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &args)?;
    let (agent, host, public) =
        start_http_agent(&edge, "tcp", web, "flood", &["--inspect", "full"])?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let mut c = client(public).await?;
    let (mut peak, n) = (0u64, 64usize);
    let body: Vec<u8> = (0..65_536u32).map(|i| (i % 241) as u8).collect();
    for i in 0..n {
        let req = Request::post(format!("/sum?i={i}"))
            .header("host", &host)
            .body(full(body.clone()))?;
        assert_eq!(send(&mut c, req).await?.0, 200);
        if i % 8 == 0 {
            peak = peak.max(store_bytes(&admin).await?);
        }
    }
    // The newest is stored (or queued for the store), the oldest pruned to
    // make room; the store never passed its cap.
    let (_, newest_detail) = newest(&admin, n, "stored").await?;
    assert_eq!(
        newest_detail.body["request"]["path"],
        format!("/sum?i={}", n - 1)
    );
    let listed = admin.get("/api/v1/requests?limit=1000").await?;
    let oldest = listed.body["requests"]
        .as_array()
        .and_then(|l| l.last())
        .context("oldest")?;
    assert_eq!(oldest["path"], "/sum?i=0");
    // A detail handed over is readable from the writer's queue until it is
    // written, so the oldest is pruned only once the writer has caught up:
    // wait for that, for as long as a loaded machine may need.
    let path = format!("/api/v1/requests/{}", oldest["id"].as_str().context("id")?);
    let mut old = admin.get(&path).await?;
    for _ in 0..100 {
        if old.body["detail"] != "stored" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        old = admin.get(&path).await?;
    }
    assert_eq!(old.body["detail"], "pruned", "{}", old.text);
    peak = peak.max(store_bytes(&admin).await?);
    assert!(peak > CAP / 2 && peak <= CAP, "peak {peak} of a {CAP} cap");
    drop((c, agent));
    stop(&mut edge).await?;
    let data = DataDir::open_existing(dir.path())?;
    let store = BodyStore::open_dir(&data.path().join(BODIES_DIR), BodyLimits::default())?;
    assert!(
        store.used() <= CAP && store.used() > CAP / 2,
        "{} stored",
        store.used()
    );
    Ok(())
}
