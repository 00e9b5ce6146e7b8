//! Full capture through a real HTTP tunnel: headers and body prefixes go to
//! the body store with credentials masked (the secret is nowhere in the data
//! dir), the log's `RequestCaptured` carries each body's SHA-256, length and
//! truncated flag, and a 1 MiB body is kept truncated to the limit.

mod flood;
mod replay;

use crate::common;

use std::time::Duration;

use anyhow::{Context, Result};
use beamd::data_dir::DataDir;
use beamd::inspector::{BodyLimits, BodyStore, BODIES_DIR};
use beamd_events::log::Store;
use beamd_events::vocabulary::RequestCaptured;
use beamd_events::Event;
use common::api::{tenant, Api};
use common::http::{client, full, http_server, send, start_http_agent};
use common::nowhere;
use common::tlog::stop;
use common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};
use hyper::Request;
use sha2::{Digest, Sha256};

const SECRET: &str = "s3cr3t-bearer-4242";
const API_KEY: &str = "k-api-777";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The local service, an edge (with `extra` flags), and an HTTP agent named
/// `name` that asks for full capture: the edge, the agent, its host and public address.
async fn full_capture(
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> Result<(Edge, Proc, String, std::net::SocketAddr)> {
    let web = http_server().await?;
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let edge = start_edge(dir, "tcp", "127.0.0.1:0", &args)?;
    let (agent, host, public) = start_http_agent(&edge, "tcp", web, name, &["--inspect", "full"])?;
    Ok((edge, agent, host, public))
}

#[tokio::test]
async fn full_capture_stores_masked_headers_and_bodies_beside_the_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let extra = ["--body-limit", "65536", "--mask-header", "X-Api-Key"];
    let (mut edge, agent, host, public) = full_capture(dir.path(), "hook", &extra).await?;
    let mut c = client(public).await?;
    let json = r#"{"event":"payment.succeeded","amount":4200}"#;
    let req = Request::post("/sum")
        .header("host", &host)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {SECRET}"))
        .header("x-api-key", API_KEY)
        .body(full(json))?;
    let (status, _) = send(&mut c, req).await?;
    assert_eq!(status, 200);
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post("/sum")
        .header("host", &host)
        .body(full(big.clone()))?;
    let (status, answer) = send(&mut c, req).await?;
    assert_eq!(status, 200);
    assert!(answer.starts_with("1048576 "), "{answer}");
    drop(c);

    // Over the API: the detail of each, and 404 for another tenant.
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let mut listed = Vec::new();
    for _ in 0..100 {
        let got = admin.get("/api/v1/requests").await?;
        listed = got.body["requests"].as_array().cloned().unwrap_or_default();
        if listed.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    // Newest first: the 1 MiB one, then the JSON one.
    // By id: the two may have been captured in one window, and share its seq.
    let id_of = |i: usize| listed[i]["id"].as_str().unwrap_or_default().to_string();
    // Details are written off the data path: wait until both are stored.
    let paths = [0, 1].map(|i| format!("/api/v1/requests/{}", id_of(i)));
    let detail = |i: usize| admin.get(&paths[i]);
    let mut small = detail(1).await?;
    for _ in 0..100 {
        if small.body["detail"] == "stored" && detail(0).await?.body["detail"] == "stored" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        small = detail(1).await?;
    }
    assert_eq!(small.status, 200, "{}", small.text);
    assert_eq!(small.body["detail"], "stored");
    assert_eq!(small.body["requestBody"]["data"], json);
    assert_eq!(small.body["requestBody"]["encoding"], "utf8");
    assert_eq!(small.body["requestBody"]["contentType"], "application/json");
    assert_eq!(small.body["requestBody"]["truncated"], false);
    assert!(!small.text.contains(SECRET), "{}", small.text);
    let large = admin.get(&format!("/api/v1/requests/{}", id_of(0))).await?;
    assert_eq!(large.body["requestBody"]["truncated"], true);
    assert_eq!(large.body["requestBody"]["len"], 1_048_576);
    assert_eq!(large.body["requestBody"]["encoding"], "base64");
    let (_, other) = tenant(&admin, "other").await?;
    let theirs = other.get(&format!("/api/v1/requests/{}", id_of(1))).await?;
    assert_eq!(theirs.status, 404, "{}", theirs.text);
    assert_eq!(
        admin.get("/api/v1/requests/1").await?.status,
        404,
        "not a request"
    );
    // A name that is neither an id nor a seq names no request.
    assert_eq!(admin.get("/api/v1/requests/abc").await?.status, 404);

    drop(agent);
    stop(&mut edge).await?;

    let data = DataDir::open_existing(dir.path())?;
    let store = data.log_store()?;
    let captured: Vec<RequestCaptured> = store
        .scan(1, u64::MAX, usize::MAX)?
        .into_iter()
        .filter_map(|(seq, b)| beamd_events::envelope::decode_record(seq, &b).ok())
        .flat_map(|e| match e.event {
            Event::RequestCaptured(r) => vec![r],
            Event::RequestsCaptured(w) => w.requests,
            _ => vec![],
        })
        .collect();
    assert_eq!(captured.len(), 2, "{captured:?}");
    let bodies = BodyStore::open_dir(&data.path().join(BODIES_DIR), BodyLimits::default())?;

    let small = &captured[0];
    let seen = small.request_body.as_ref().context("request body seen")?;
    assert_eq!(seen.sha256, hex(&Sha256::digest(json.as_bytes())));
    assert!(!seen.truncated);
    let detail = bodies.get(&small.id)?.context("detail stored")?;
    assert_eq!(detail.request_body, json.as_bytes());
    let header = |name: &str| {
        detail
            .request_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer [masked]"));
    assert_eq!(header("x-api-key").as_deref(), Some("[masked]"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert!(small.response_body.is_some());

    let large = &captured[1];
    let seen = large.request_body.as_ref().context("large body seen")?;
    assert_eq!(seen.sha256, hex(&Sha256::digest(&big)));
    assert_eq!(seen.len, 1_048_576);
    assert!(seen.truncated);
    let detail = bodies.get(&large.id)?.context("large detail stored")?;
    assert_eq!(detail.request_body, big[..65_536]);

    drop((bodies, store, data));
    nowhere(dir.path(), SECRET.as_bytes())?;
    nowhere(dir.path(), API_KEY.as_bytes())?;
    Ok(())
}

#[tokio::test]
async fn details_expire_after_their_time_to_live_without_new_traffic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut edge, agent, host, public) =
        full_capture(dir.path(), "ttl", &["--body-ttl", "2s"]).await?;
    let mut c = client(public).await?;
    let req = Request::post("/sum")
        .header("host", &host)
        .body(full("short-lived"))?;
    assert_eq!(send(&mut c, req).await?.0, 200);
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let mut seen = Vec::new();
    // Stored first, then pruned once the time to live passed, with no new request.
    for _ in 0..150 {
        let listed = admin.get("/api/v1/requests").await?;
        if let Some(seq) = listed.body["requests"][0]["seq"].as_u64() {
            let d = admin.get(&format!("/api/v1/requests/{seq}")).await?;
            let state = d.body["detail"].as_str().unwrap_or_default().to_string();
            // Written off the data path, yet readable from the first look.
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if state == "pruned" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["stored", "pruned"], "{seen:?}");
    drop((c, agent));
    stop(&mut edge).await?;
    Ok(())
}
