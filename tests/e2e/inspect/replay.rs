//! Replay through a real HTTP tunnel: a request captured in full is sent
//! again as captured and edited (over the API and the CLI, by its seq or its
//! `req_…` id) and reaches the local service, which records what it
//! received; the replay is captured with `replayOf`, the original's id.
//! Another tenant gets 404; a tunnel switched to `meta` over the API keeps no
//! detail and its requests (which have ids all the same) cannot be replayed,
//! while the request captured in full earlier still can.

use crate::common;

use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::api::{tenant, Api};
use common::http::{client, full, send, start_http_agent};
use common::inspect::{count_listed, newest};
use common::nowhere;
use common::tlog::stop;
use common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const SECRET: &str = "whsec-original-31337";
const FRESH: &str = "fresh-secret-8086";

/// A request as the local service received it.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Seen = Arc<Mutex<Vec<Got>>>;

/// A local service that records every request and answers 201 with
/// `{"got": <body length>}` and `x-served: yes`.
async fn recording_server(seen: Seen) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let got = Got {
                        method: parts.method.to_string(),
                        path: parts.uri.to_string(),
                        headers: (parts.headers.iter())
                            .map(|(k, v)| {
                                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                                (k.to_string(), v)
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(got);
                    let answer = format!(r#"{{"got":{}}}"#, body.len());
                    let response = Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .header("x-served", "yes")
                        .body(Full::new(Bytes::from(answer)))
                        .expect("a valid response");
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(port)
}

fn last(seen: &Seen) -> Option<Got> {
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .last()
        .cloned()
}

fn count(seen: &Seen) -> usize {
    seen.lock().unwrap_or_else(|p| p.into_inner()).len()
}

async fn post(
    c: &mut hyper::client::conn::http1::SendRequest<common::http::Body>,
    host: &str,
    path: &str,
    body: &str,
) -> Result<u16> {
    let req = Request::post(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {SECRET}"))
        .header("x-signature", "sig-1")
        .body(full(body.to_string()))?;
    Ok(send(c, req).await?.0)
}

/// Runs the CLI against the edge's API, off the test's runtime (which
/// serves the local service meanwhile): success, stdout, stderr.
async fn beamd_cli(edge: &Edge, args: &[&str]) -> Result<(bool, String, String)> {
    let api = format!("http://{}", edge.api);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_beamd"));
    cmd.args(args).args(["--api", &api, "--key", ADMIN_TOKEN]);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

async fn start(
    dir: &std::path::Path,
    seen: Seen,
    extra: &[&str],
) -> Result<(Edge, Proc, String, std::net::SocketAddr)> {
    let web = recording_server(seen).await?;
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let edge = start_edge(dir, "tcp", "127.0.0.1:0", &args)?;
    let (agent, host, public) =
        start_http_agent(&edge, "tcp", web, "hook", &["--inspect", "full"])?;
    Ok((edge, agent, host, public))
}

#[tokio::test]
async fn replay_as_captured_and_edited_reaches_the_service() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let seen: Seen = Arc::default();
    let (mut edge, agent, host, public) =
        start(dir.path(), seen.clone(), &["--body-limit", "1024"]).await?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let mut c = client(public).await?;
    let json = r#"{"event":"payment.succeeded","amount":4200}"#;
    assert_eq!(post(&mut c, &host, "/hooks/pay?x=1", json).await?, 201);
    let (seq, detail) = newest(&admin, 1, "stored").await?;
    assert_eq!(detail.body["requestBody"]["data"], json);
    let id = detail.body["request"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    assert!(id.starts_with("req_") && id.len() == 20, "{id}");

    // As captured: same method, path, body and headers; the masked credential is left out.
    let replayed = admin
        .send("POST", &format!("/api/v1/requests/{seq}/replay"), None)
        .await?;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert_eq!(replayed.body["status"], 201);
    assert_eq!(replayed.body["replayOf"], id.as_str());
    assert_eq!(
        replayed.body["body"]["data"],
        format!(r#"{{"got":{}}}"#, json.len())
    );
    let served = replayed.body["headers"].as_array().context("headers")?;
    assert!(
        served.iter().any(|h| h[0] == "x-served" && h[1] == "yes"),
        "{served:?}"
    );
    assert_eq!(
        replayed.body["request"]["replayOf"],
        id.as_str(),
        "{}",
        replayed.text
    );
    let replay_seq = replayed.body["request"]["seq"]
        .as_u64()
        .context("replay seq")?;
    assert!(replay_seq > seq);
    let got = last(&seen).context("received")?;
    assert_eq!(count(&seen), 2);
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/hooks/pay?x=1")
    );
    assert_eq!(got.body, json.as_bytes());
    assert_eq!(got.header("x-signature"), Some("sig-1"));
    assert_eq!(
        got.header("authorization"),
        None,
        "masked values are not resent"
    );
    assert_eq!(
        got.header("content-length"),
        Some(json.len().to_string().as_str())
    );
    // The replay is listed with replayOf, and its own detail is stored.
    let listed = admin.get("/api/v1/requests").await?;
    let first = &listed.body["requests"][0];
    assert_eq!(
        (first["seq"].as_u64(), first["replayOf"].as_str()),
        (Some(replay_seq), Some(id.as_str()))
    );

    // Edited: method, path, a header set, one removed, another body.
    let edit = format!(
        r#"{{"method":"PUT","path":"/edited?y=2","headers":{{"authorization":"Bearer {FRESH}","x-signature":null}},"body":"{{\"edited\":true}}"}}"#
    );
    let replayed = admin
        .send(
            "POST",
            &format!("/api/v1/requests/{id}/replay"),
            Some(&edit),
        )
        .await?;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    let got = last(&seen).context("received")?;
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("PUT", "/edited?y=2")
    );
    assert_eq!(got.body, br#"{"edited":true}"#);
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {FRESH}").as_str())
    );
    assert_eq!(got.header("x-signature"), None);
    assert_eq!(replayed.body["request"]["method"], "PUT");

    // The CLI: show (JSON pretty-printed, credentials masked), then replay with a header and a body file.
    let (ok, out, err) = beamd_cli(&edge, &["requests", "show", &id]).await?;
    assert!(ok, "{err}");
    assert!(out.contains("\"event\": \"payment.succeeded\""), "{out}");
    assert!(out.contains("authorization: Bearer [masked]"), "{out}");
    let file = dir.path().join("body.json");
    std::fs::write(&file, r#"{"from":"cli"}"#)?;
    let file = file.to_str().context("path")?;
    let (ok, out, err) = beamd_cli(
        &edge,
        &[
            "requests",
            "replay",
            &id,
            "--header",
            "X-Signature: cli",
            "--body-file",
            file,
        ],
    )
    .await?;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("201 (replay of {id})")), "{out}");
    let got = last(&seen).context("received")?;
    assert_eq!(
        (got.body.as_slice(), got.header("x-signature")),
        (br#"{"from":"cli"}"#.as_slice(), Some("cli"))
    );
    let (ok, _, err) = beamd_cli(&edge, &["requests", "replay", "999999"]).await?;
    assert!(!ok, "an unknown request is an error");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Another tenant: 404 for the request and for its replay, and nothing is sent.
    let (_, other) = tenant(&admin, "other").await?;
    let before = count(&seen);
    for name in [seq.to_string(), id.clone()] {
        assert_eq!(
            other.get(&format!("/api/v1/requests/{name}")).await?.status,
            404
        );
        let theirs = other
            .send("POST", &format!("/api/v1/requests/{name}/replay"), None)
            .await?;
        assert_eq!(theirs.status, 404, "{}", theirs.text);
    }
    assert_eq!(count(&seen), before);

    // A body kept only in part cannot be replayed as captured.
    let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let before = count_listed(&admin).await?;
    assert_eq!(post(&mut c, &host, "/big", &long).await?, 201);
    let n = before + 1;
    let (big, _) = newest(&admin, n, "stored").await?;
    let refused = admin
        .send("POST", &format!("/api/v1/requests/{big}/replay"), None)
        .await?;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("1024 of 4106"), "{}", refused.text);
    let bad = admin
        .send(
            "POST",
            &format!("/api/v1/requests/{big}/replay"),
            Some(r#"{"method":"GET BAD","body":""}"#),
        )
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.text);

    // Switched to meta over the API: no detail, no replay; `off`: not captured at all.
    let tunnels = admin.get("/api/v1/tunnels").await?;
    let tunnel = tunnels.body["tunnels"][0]["id"]
        .as_str()
        .context("tunnel")?
        .to_string();
    assert_eq!(tunnels.body["tunnels"][0]["inspect"], "full");
    let path = format!("/api/v1/tunnels/{tunnel}");
    let set = admin
        .send("PATCH", &path, Some(r#"{"inspect":"meta"}"#))
        .await?;
    assert_eq!(
        (set.status, set.body["inspect"].as_str()),
        (200, Some("meta")),
        "{}",
        set.text
    );
    let wrong = admin
        .send("PATCH", &path, Some(r#"{"inspect":"everything"}"#))
        .await?;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    let listed_before = count_listed(&admin).await?;
    assert_eq!(post(&mut c, &host, "/meta", "{}").await?, 201);
    let (meta, d) = newest(&admin, listed_before + 1, "notCaptured").await?;
    let meta_id = d.body["request"]["id"]
        .as_str()
        .context("a request captured without detail has an id too")?
        .to_string();
    assert!(meta_id.starts_with("req_") && meta_id != id, "{meta_id}");
    let by_id = admin.get(&format!("/api/v1/requests/{meta_id}")).await?;
    assert_eq!(
        (by_id.status, by_id.body["request"]["seq"].as_u64()),
        (200, Some(meta)),
        "{}",
        by_id.text
    );
    for name in [meta.to_string(), meta_id] {
        let refused = admin
            .send("POST", &format!("/api/v1/requests/{name}/replay"), None)
            .await?;
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert!(refused.text.contains("not captured"), "{}", refused.text);
    }
    // The request captured in full before still replays, by its id; the
    // replay is listed (with its own id) and points at the original's.
    let replayed = admin
        .send("POST", &format!("/api/v1/requests/{id}/replay"), None)
        .await?;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    let listed = &replayed.body["request"];
    assert_eq!(listed["replayOf"], id.as_str(), "{}", replayed.text);
    assert!(
        listed["id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_") && r != id),
        "{}",
        replayed.text
    );
    let listed_before = count_listed(&admin).await?;
    let set = admin
        .send("PATCH", &path, Some(r#"{"inspect":"off"}"#))
        .await?;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(post(&mut c, &host, "/off", "{}").await?, 201);
    admin
        .send("PATCH", &path, Some(r#"{"inspect":"meta"}"#))
        .await?;
    assert_eq!(post(&mut c, &host, "/meta-again", "{}").await?, 201);
    let (again, d) = newest(&admin, listed_before + 1, "notCaptured").await?;
    assert!(again > meta);
    assert_eq!(
        d.body["request"]["path"], "/meta-again",
        "the `off` request was not captured"
    );
    let all = admin.get("/api/v1/requests?limit=1000").await?;
    ensure!(!all.text.contains("\"/off\""), "{}", all.text);

    drop((c, agent));
    stop(&mut edge).await?;
    nowhere(dir.path(), SECRET.as_bytes())?;
    nowhere(dir.path(), FRESH.as_bytes())?;
    Ok(())
}
