//! Gateway errors end to end: timeouts, 5xx answers and unreachable
//! services through a real tunnel (and a dead upstream URL) become error
//! groups per route and kind, listed with the `resolved` filter and paging,
//! resolved through the API, and opened again by a new failure; and the
//! metrics buckets.

use crate::common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::{error_of, Api};
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::start_edge;

async fn wait_for_groups(api: &Api, query: &str, n: usize) -> Result<serde_json::Value> {
    for _ in 0..100 {
        let a = api.get(&format!("/api/v1/errors{query}")).await?;
        ensure!(a.status == 200, "{}", a.text);
        if a.body["count"] == n {
            return Ok(a.body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("never {n} error groups for {query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_grouped_listed_and_resolved() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let closed = common::ClosedPort::bind()?;
    let dead = closed.addr.port();
    // The dead upstream below is on loopback: opened on purpose.
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--egress-allow",
            "127.0.0.0/8",
        ],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "err", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let api = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let mut ids = Vec::new();
    for body in [
        r#"{"name":"tunnel","tunnel":"err","timeoutMs":1000}"#.to_string(),
        format!(r#"{{"name":"dead","targetUrl":"http://127.0.0.1:{dead}"}}"#),
    ] {
        let made = api.send("POST", "/api/v1/services", Some(&body)).await?;
        ensure!(made.status == 201, "{}", made.text);
        ids.push(made.body["id"].as_str().context("id")?.to_string());
    }
    for (path, svc) in [("/slow", &ids[0]), ("/boom", &ids[0]), ("/dead", &ids[1])] {
        let body = format!(
            r#"{{"host":"{host}","method":"GET","pathPattern":"{path}","serviceId":"{svc}","authRequired":false}}"#
        );
        let made = api.send("POST", "/api/v1/routes", Some(&body)).await?;
        ensure!(made.status == 201, "{}", made.text);
    }

    let mut c = client(public).await?;
    for (path, want) in [
        ("/slow", 504),
        ("/slow", 504),
        ("/boom", 500),
        ("/dead", 502),
    ] {
        let (status, body) = send(&mut c, get(&host, path)?).await?;
        ensure!(status == want, "{path}: {status} {body}");
    }
    let all = wait_for_groups(&api, "", 3).await?;
    // The requests through the tunnel are in the metrics: three, all 5xx.
    let mut buckets = serde_json::Value::Null;
    for _ in 0..100 {
        buckets = api.get("/api/v1/metrics?period=1h").await?.body;
        let sum = |field: &str| {
            buckets
                .as_array()
                .map(|b| b.iter().filter_map(|m| m[field].as_u64()).sum::<u64>())
                .unwrap_or(0)
        };
        if sum("requestCount") == 3 {
            ensure!(sum("errorCount") == 3, "{buckets}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = buckets.as_array().context("buckets")?;
    ensure!(list.len() == 12, "12 buckets of 5 minutes: {buckets}");
    ensure!(
        list.iter()
            .any(|m| m["p99LatencyMs"].as_u64().is_some_and(|ms| ms >= 1000)),
        "the timeouts' latency shows: {buckets}"
    );
    let bad = api.get("/api/v1/metrics?period=2h").await?;
    ensure!(bad.status == 400, "{}", bad.text);
    let results = all["results"].as_array().context("results")?;
    let by_kind = |kind: &str| results.iter().find(|e| e["kind"] == kind).cloned();
    let timeout = by_kind("timeout").context("a timeout group")?;
    ensure!(
        timeout["count"] == 2 && timeout["statusCode"] == 504,
        "{timeout}"
    );
    let server = by_kind("server_error").context("a server_error group")?;
    ensure!(server["statusCode"] == 500, "{server}");
    ensure!(by_kind("unreachable").is_some(), "{all}");

    let id = timeout["id"].as_str().context("id")?;
    let a = api
        .send(
            "PATCH",
            &format!("/api/v1/errors/{id}"),
            Some(r#"{"resolved":true}"#),
        )
        .await?;
    ensure!(a.status == 204, "{}", a.text);
    let open = wait_for_groups(&api, "?resolved=false", 2).await?;
    ensure!(
        open["results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|e| e["resolved"] == false)),
        "{open}"
    );
    wait_for_groups(&api, "?resolved=true", 1).await?;
    let bad = api
        .send(
            "PATCH",
            &format!("/api/v1/errors/{id}"),
            Some(r#"{"resolved":false}"#),
        )
        .await?;
    ensure!(bad.status == 400, "{}", bad.text);
    let server_id = server["id"].as_str().context("id")?;
    let a = api
        .send("POST", &format!("/api/v1/errors/{server_id}/resolve"), None)
        .await?;
    ensure!(a.status == 204, "{}", a.text);
    wait_for_groups(&api, "?resolved=true", 2).await?;
    // A page past int64, the documented range, is refused, not wrapped.
    for path in [
        "/api/v1/errors?page=18446744073709551615",
        "/api/v1/logs?page=18446744073709551615",
    ] {
        let far = api.get(path).await?;
        ensure!(far.status == 400, "{path}: {}", far.text);
    }
    for path in [
        "/api/v1/errors?page=9223372036854775807",
        "/api/v1/logs?page=9223372036854775807",
        "/api/v1/logs?from=2000&to=1000",
    ] {
        let far = api.get(path).await?;
        ensure!(
            far.status == 200 && far.body["results"].as_array().is_some_and(Vec::is_empty),
            "{path}: {}",
            far.text
        );
    }
    let page2 = api.get("/api/v1/errors?page=2").await?;
    ensure!(
        page2.body["results"].as_array().map(Vec::len) == Some(0) && page2.body["previous"] == 1,
        "{}",
        page2.text
    );

    // A new timeout opens the group again, with the count going on.
    let (status, _) = send(&mut c, get(&host, "/slow")?).await?;
    ensure!(status == 504);
    let open = wait_for_groups(&api, "?resolved=false", 2).await?;
    let again = open["results"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e["kind"] == "timeout").cloned())
        .context("the timeout group open again")?;
    ensure!(again["count"] == 3, "{again}");

    let (_, other) = common::api::tenant(&api, "other").await?;
    let theirs = other
        .send("POST", &format!("/api/v1/errors/{id}/resolve"), None)
        .await?;
    ensure!(
        theirs.status == 404 && error_of(&theirs) == "not_found",
        "{}",
        theirs.text
    );
    Ok(())
}
