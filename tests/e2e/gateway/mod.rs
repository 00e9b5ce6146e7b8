//! The API gateway end to end: services, routes and consumers made through
//! the REST API, and requests through a real edge and a real tunnel to a
//! real local service — routing by method and pattern, keys required, rate
//! limits with Retry-After, a change applied live, a deleted service (502),
//! an upstream URL service.

mod errors;
mod health;

use crate::common;

use anyhow::{ensure, Context, Result};
use common::api::{error_of, Api};
use common::http::{client, full, get, http_server, send, start_http_agent};
use common::tunnel::start_edge;
use hyper::Request;

fn with_key(
    method: &str,
    host: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Result<Request<common::http::Body>> {
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("x-api-key", key)
        .body(full(body.to_string()))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_services_and_consumers_through_a_tunnel() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    // The upstream-URL service below is on loopback: opened on purpose.
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
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "api", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);

    let svc = admin
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"api","tunnel":"api","timeoutMs":5000}"#),
        )
        .await?;
    ensure!(svc.status == 201, "create service: {}", svc.text);
    let svc = svc.body["id"].as_str().context("id")?.to_string();
    let bad = admin
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"x","tunnel":"a","targetUrl":"http://h"}"#),
        )
        .await?;
    ensure!(
        bad.status == 400 && error_of(&bad) == "invalid_request",
        "{}",
        bad.text
    );

    // Without routes the host is a plain tunnel.
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(
        status == 200 && body == "hello through the tunnel",
        "{status} {body}"
    );

    let route = |method: &str, pattern: &str, service: &str, auth: bool, extra: &str| {
        format!(
            r#"{{"host":"{host}","method":"{method}","pathPattern":"{pattern}","serviceId":"{service}","authRequired":{auth}{extra}}}"#
        )
    };
    let mut ids = Vec::new();
    for body in [
        route("GET", "/hello", &svc, false, ""),
        route("POST", "/sum", &svc, true, ""),
        route("*", "/*", &svc, false, ""),
        route("GET", "/headers", &svc, false, r#","rateLimitOverride":3"#),
    ] {
        let made = admin.send("POST", "/api/v1/routes", Some(&body)).await?;
        ensure!(made.status == 201, "create route {body}: {}", made.text);
        ids.push(made.body["id"].as_str().context("id")?.to_string());
    }
    let listed = admin.get("/api/v1/routes").await?;
    ensure!(
        listed.body.as_array().map(Vec::len) == Some(4),
        "{}",
        listed.text
    );
    let foreign = admin
        .send(
            "POST",
            "/api/v1/routes",
            Some(&route("GET", "/", &svc, false, "").replace(&host, "example.org")),
        )
        .await?;
    ensure!(
        foreign.status == 403,
        "a host that is not ours: {}",
        foreign.text
    );

    // The literal /hello beats /*; other paths fall to /* and reach the service.
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(
        status == 200 && body == "hello through the tunnel",
        "{status} {body}"
    );
    let (status, body) = send(&mut c, get(&host, "/elsewhere")?).await?;
    ensure!(
        status == 404 && body == "nope",
        "the catch-all route: {status} {body}"
    );

    // A route that needs a key.
    let (status, body) = send(&mut c, with_key("POST", &host, "/sum", "", "abc")?).await?;
    ensure!(
        status == 401 && body.contains("unauthorized"),
        "no key: {status} {body}"
    );
    let made = admin
        .send(
            "POST",
            "/api/v1/consumers",
            Some(r#"{"name":"shop","rateLimitTier":"standard"}"#),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let key = made.body["apiKey"].as_str().context("apiKey")?.to_string();
    let consumer = made.body["id"].as_str().context("id")?.to_string();
    let (status, body) = send(&mut c, with_key("POST", &host, "/sum", &key, "abc")?).await?;
    ensure!(
        status == 200 && body.starts_with("3 "),
        "with the key: {status} {body}"
    );
    // The request log knows the consumer.
    let mut logged = serde_json::Value::Null;
    for _ in 0..100 {
        logged = admin
            .get(&format!("/api/v1/logs?consumerId={consumer}"))
            .await?
            .body;
        if logged["count"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(
        logged["count"] == 1 && logged["results"][0]["consumerId"] == consumer.as_str(),
        "{logged}"
    );
    let (status, _) = send(
        &mut c,
        with_key("POST", &host, "/sum", &format!("{key}x"), "abc")?,
    )
    .await?;
    ensure!(status == 401, "a wrong key: {status}");

    // The route's override: 3 a minute, then 429 with Retry-After.
    for i in 0..3 {
        let (status, body) = send(&mut c, get(&host, "/headers")?).await?;
        ensure!(status == 200, "request {i}: {status} {body}");
    }
    c.ready().await?;
    let resp = c.send_request(get(&host, "/headers")?).await?;
    ensure!(resp.status() == 429, "the fourth: {}", resp.status());
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .context("Retry-After")?
        .to_str()?
        .parse()?;
    ensure!((1..=20).contains(&retry), "Retry-After {retry}");
    http_body_util::BodyExt::collect(resp.into_body()).await?;

    // Changes apply to the next request: without the catch-all, unmatched
    // paths get the gateway's 404; /hello disabled and enabled again.
    let gone = admin
        .send("DELETE", &format!("/api/v1/routes/{}", ids[2]), None)
        .await?;
    ensure!(
        gone.status == 204 && gone.text.is_empty(),
        "{} {}",
        gone.status,
        gone.text
    );
    let (status, body) = send(&mut c, get(&host, "/elsewhere")?).await?;
    ensure!(
        status == 404 && body.contains("no route"),
        "without the catch-all: {status} {body}"
    );
    let patched = admin
        .send(
            "PATCH",
            &format!("/api/v1/routes/{}", ids[0]),
            Some(r#"{"enabled":false}"#),
        )
        .await?;
    ensure!(
        patched.status == 200 && patched.body["enabled"] == false,
        "{}",
        patched.text
    );
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(
        status == 404 && body.contains("no route"),
        "after disabling /hello: {status} {body}"
    );
    admin
        .send(
            "PATCH",
            &format!("/api/v1/routes/{}", ids[0]),
            Some(r#"{"enabled":true}"#),
        )
        .await?;
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(
        status == 200 && body == "hello through the tunnel",
        "enabled again: {status} {body}"
    );

    // Revoking the consumer stops its key at once.
    let revoked = admin
        .send("DELETE", &format!("/api/v1/consumers/{consumer}"), None)
        .await?;
    ensure!(revoked.status == 204, "{}", revoked.text);
    let (status, _) = send(&mut c, with_key("POST", &host, "/sum", &key, "abc")?).await?;
    ensure!(status == 401, "a revoked key: {status}");
    let again = admin
        .send("DELETE", &format!("/api/v1/consumers/{consumer}"), None)
        .await?;
    ensure!(again.status == 404, "revoked twice: {}", again.text);

    // A service at an upstream URL, then deleted: 502 until reassigned.
    let direct = admin
        .send(
            "POST",
            "/api/v1/services",
            Some(&format!(
                r#"{{"name":"direct","targetUrl":"http://127.0.0.1:{web}"}}"#
            )),
        )
        .await?;
    ensure!(direct.status == 201, "{}", direct.text);
    let direct = direct.body["id"].as_str().context("id")?.to_string();
    let made = admin
        .send(
            "POST",
            "/api/v1/routes",
            Some(&route("GET", "/chunked", &direct, false, "")),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let chunked_route = made.body["id"].as_str().context("id")?.to_string();
    let (status, body) = send(&mut c, get(&host, "/chunked")?).await?;
    ensure!(
        status == 200 && body.starts_with("chunk 0;"),
        "upstream URL: {status} {body}"
    );
    let deleted = admin
        .send("DELETE", &format!("/api/v1/services/{direct}"), None)
        .await?;
    ensure!(deleted.status == 204, "{}", deleted.text);
    let (status, body) = send(&mut c, get(&host, "/chunked")?).await?;
    ensure!(
        status == 502 && body.contains("deleted"),
        "deleted service: {status} {body}"
    );
    let moved = admin
        .send(
            "PATCH",
            &format!("/api/v1/routes/{chunked_route}"),
            Some(&format!(r#"{{"serviceId":"{svc}"}}"#)),
        )
        .await?;
    ensure!(moved.status == 200, "{}", moved.text);
    let (status, body) = send(&mut c, get(&host, "/chunked")?).await?;
    ensure!(
        status == 200 && body.starts_with("chunk 0;"),
        "reassigned: {status} {body}"
    );
    let services = admin.get("/api/v1/services").await?;
    ensure!(
        services.body.as_array().map(Vec::len) == Some(1),
        "deleted services are not listed: {}",
        services.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_gateway_is_not_found() -> Result<()> {
    let (_dir, edge) = common::api::api_edge()?;
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let (_, other) = common::api::tenant(&admin, "other").await?;
    let svc = admin
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"mine","tunnel":"web"}"#),
        )
        .await?;
    ensure!(svc.status == 201, "{}", svc.text);
    let id = svc.body["id"].as_str().context("id")?;
    for (method, body) in [("PATCH", Some(r#"{"name":"theirs"}"#)), ("DELETE", None)] {
        let a = other
            .send(method, &format!("/api/v1/services/{id}"), body)
            .await?;
        ensure!(
            a.status == 404 && error_of(&a) == "not_found",
            "{method}: {}",
            a.text
        );
    }
    let listed = other.get("/api/v1/services").await?;
    ensure!(
        listed.body.as_array().map(Vec::len) == Some(0),
        "{}",
        listed.text
    );
    let base = other.get("/api/v1/workspace").await?;
    let tunnel_base = base.body["tunnelBase"].as_str().context("tunnelBase")?;
    let route = format!(
        r#"{{"host":"x.{tunnel_base}","method":"GET","pathPattern":"/","serviceId":"{id}","authRequired":false}}"#
    );
    let a = other.send("POST", "/api/v1/routes", Some(&route)).await?;
    ensure!(
        a.status == 404 && a.text.contains("none of your services"),
        "{}",
        a.text
    );
    let tiers = other
        .send(
            "POST",
            "/api/v1/consumers",
            Some(r#"{"name":"c","rateLimitTier":"gold"}"#),
        )
        .await?;
    ensure!(tiers.status == 400, "{}", tiers.text);
    Ok(())
}

/// A page of `/logs?{query}` once it counts `n` requests.
async fn logs_counting(api: &Api, query: &str, n: usize) -> Result<serde_json::Value> {
    let mut page = serde_json::Value::Null;
    for _ in 0..100 {
        page = api.get(&format!("/api/v1/logs?{query}")).await?.body;
        if page["count"] == n {
            return Ok(page);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("/logs?{query} never counted {n}: {page}")
}

/// `GET path` on `host` with a user agent and, if given, a consumer key.
fn call(host: &str, path: &str, key: Option<&str>) -> Result<Request<common::http::Body>> {
    let mut req = Request::get(path)
        .header("host", host)
        .header("user-agent", "refusal-burst/1");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    Ok(req.body(full(""))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_and_counted_as_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    // 20 recent requests in memory: older ones are found in the history.
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--inspector-recent", "20"],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "guarded", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let svc = admin
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"guarded","tunnel":"guarded"}"#),
        )
        .await?;
    ensure!(svc.status == 201, "{}", svc.text);
    let svc = svc.body["id"].as_str().context("id")?;
    let made = admin
        .send(
            "POST",
            "/api/v1/routes",
            Some(&format!(
                r#"{{"host":"{host}","method":"GET","pathPattern":"/hello","serviceId":"{svc}","authRequired":true}}"#
            )),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let route = made.body["id"].as_str().context("id")?.to_string();
    let made = admin
        .send(
            "POST",
            "/api/v1/consumers",
            Some(r#"{"name":"app","rateLimitTier":"free"}"#),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let key = made.body["apiKey"].as_str().context("apiKey")?.to_string();
    let consumer = made.body["id"].as_str().context("id")?.to_string();

    // A burst: no key, a wrong key, then past the free tier's 60 a minute.
    let mut c = client(public).await?;
    let mut got = std::collections::BTreeMap::<u16, usize>::new();
    for (n, key) in [
        (5, None),
        (3, Some("con_nope.wrong")),
        (70, Some(key.as_str())),
    ] {
        for _ in 0..n {
            let (status, _) = send(&mut c, call(&host, "/hello", key)?).await?;
            *got.entry(status).or_default() += 1;
        }
    }
    let (served, limited) = (got.get(&200).copied(), got.get(&429).copied());
    ensure!(
        got.get(&401) == Some(&8) && served.is_some_and(|n| n >= 60) && limited >= Some(5),
        "statuses {got:?}"
    );
    let (served, limited) = (served.unwrap_or(0), limited.unwrap_or(0));

    // Each refusal is in the history by its status, with why, and no body.
    let unauthorized = logs_counting(&admin, "statusCode=401", 8).await?;
    let results = unauthorized["results"].as_array().context("results")?;
    for r in results {
        ensure!(
            r["method"] == "GET"
                && r["path"] == "/hello"
                && r["host"] == host.as_str()
                && r["ip"] == "127.0.0.1"
                && r["userAgent"] == "refusal-burst/1"
                && r["routeId"] == route.as_str()
                && r["consumerId"].is_null()
                && r["bytesIn"] == 0
                && r["bytesOut"] == 0
                && r["id"].as_str().is_some_and(|id| id.starts_with("req_")),
            "{r}"
        );
    }
    let why = |reason: &str| results.iter().filter(|r| r["refused"] == reason).count();
    ensure!(
        (why("missing_key"), why("invalid_key")) == (5, 3),
        "{unauthorized}"
    );
    let over = logs_counting(&admin, "statusCode=429", limited).await?;
    for r in over["results"].as_array().context("results")? {
        ensure!(
            r["refused"] == "rate_limited:free:60/min"
                && r["consumerId"] == consumer.as_str()
                && r["bytesIn"] == 0
                && r["bytesOut"] == 0,
            "{r}"
        );
    }
    let passed = logs_counting(&admin, "statusCode=200", served).await?;
    ensure!(passed["results"][0]["refused"].is_null(), "{passed}");
    let theirs = logs_counting(&admin, &format!("consumerId={consumer}"), served + limited).await?;
    ensure!(theirs["count"] == served + limited, "{theirs}");

    // The recent list has the newest (the 429s among them); the 401s, older
    // than the recent 20, are found by id in the history. A refusal's
    // detail says it kept nothing.
    let recent = admin.get("/api/v1/requests?limit=1000").await?;
    let list = recent.body["requests"].as_array().context("requests")?;
    let with = |status: u64| list.iter().filter(|r| r["status"] == status).count();
    ensure!((with(429), list.len()) == (limited, 20), "{}", recent.text);
    for name in [&results[0]["id"], &results[7]["id"]] {
        let name = name.to_string().replace('"', "");
        let detail = admin.get(&format!("/api/v1/requests/{name}")).await?;
        ensure!(
            detail.status == 200
                && detail.body["detail"] == "notCaptured"
                && detail.body["request"]["status"] == 401
                && detail.body["request"]["refused"].is_string(),
            "{name}: {}",
            detail.text
        );
    }

    // Usage counts every one of them as a request.
    let mut requests = 0;
    for _ in 0..100 {
        let history = admin.get("/api/v1/usage/history?days=2").await?;
        requests = history.body["history"]
            .as_array()
            .context("history")?
            .iter()
            .filter_map(|d| d["requests"].as_u64())
            .sum::<u64>();
        if requests == 78 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(requests == 78, "usage counted {requests} requests of 78");
    Ok(())
}
