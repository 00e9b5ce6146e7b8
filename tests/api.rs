//! The REST API against a live edge: every route's success, its 400, 401,
//! 403 and cross-tenant 404, and the shapes of its answers.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::{call, Api};
use common::tunnel::{start_edge, Edge, ADMIN_TOKEN};
use serde_json::Value;

fn edge() -> Result<(tempfile::TempDir, Edge)> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    Ok((dir, edge))
}

/// A second tenant and its first key (manage scope), made by the admin.
async fn tenant(admin: &Api, slug: &str) -> Result<(String, Api)> {
    let made = admin
        .send(
            "POST",
            "/api/v1/tenants",
            Some(&format!(r#"{{"slug":"{slug}"}}"#)),
        )
        .await?;
    ensure!(made.status == 201, "create tenant: {}", made.text);
    let token = made.body["token"].as_str().context("token")?.to_string();
    let id = made.body["tenant"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    Ok((id, Api::new(admin.addr, &token)))
}

fn error_of(a: &common::api::Answer) -> &str {
    a.body["error"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_cors_and_the_document() -> Result<()> {
    let (_dir, edge) = edge()?;
    let anon = Api {
        addr: edge.api,
        token: None,
    };
    let doc = anon.get("/api/v1/openapi.json").await?;
    ensure!(doc.status == 200, "{}", doc.text);
    ensure!(doc.body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/v1/tokens",
        "/api/v1/usage",
        "/api/v1/domains/{id}/verify",
        "/api/v1/tenants",
    ] {
        ensure!(doc.body["paths"][path].is_object(), "{path} is documented");
    }
    // Every documented route but the public ones refuses a call without a key.
    let mut checked = 0;
    for (path, item) in doc.body["paths"].as_object().context("paths")? {
        for method in item.as_object().context("item")?.keys() {
            let concrete = path
                .replace("{id}", "tok_x")
                .replace("{key}", "tok_x.nosecretnosecret");
            let a = call(
                edge.api,
                &method.to_uppercase(),
                &concrete,
                None,
                Some("{}"),
                &[],
            )
            .await?;
            ensure!(
                a.status == 401 && error_of(&a) == "unauthorized",
                "{method} {path} without a key: {}",
                a.text
            );
            checked += 1;
        }
    }
    ensure!(checked >= 24, "{checked} operations checked");
    let none = anon.get("/api/v1/workspace").await?;
    ensure!(
        none.status == 401 && error_of(&none) == "unauthorized",
        "{}",
        none.text
    );
    let bad = Api::new(edge.api, "tok_nobody.0123456789abcdef")
        .get("/api/v1/workspace")
        .await?;
    ensure!(
        bad.status == 401 && error_of(&bad) == "unauthorized",
        "{}",
        bad.text
    );
    let garbage = call(
        edge.api,
        "GET",
        "/api/v1/workspace",
        None,
        None,
        &[("authorization", "Basic abc")],
    )
    .await?;
    ensure!(garbage.status == 401, "{}", garbage.text);
    let unknown = anon.get("/api/v1/nothing-here").await?;
    ensure!(
        unknown.status == 404 && error_of(&unknown) == "not_found",
        "{}",
        unknown.text
    );
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let wrong = admin.send("PATCH", "/api/v1/tokens", None).await?;
    ensure!(
        wrong.status == 405 && error_of(&wrong) == "method_not_allowed",
        "{}",
        wrong.text
    );
    // A CORS preflight, and the header on an ordinary answer.
    let pre = call(
        edge.api,
        "OPTIONS",
        "/api/v1/tokens",
        None,
        None,
        &[
            ("origin", "https://dash.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
    )
    .await?;
    ensure!(pre.status == 200, "preflight: {} {}", pre.status, pre.text);
    ensure!(
        pre.headers.get("access-control-allow-origin").is_some(),
        "preflight allows the origin"
    );
    let ws = call(
        edge.api,
        "GET",
        "/api/v1/workspace",
        Some(ADMIN_TOKEN),
        None,
        &[("origin", "https://dash.example")],
    )
    .await?;
    ensure!(
        ws.status == 200 && ws.headers.get("access-control-allow-origin").is_some(),
        "{}",
        ws.text
    );
    ensure!(
        ws.body["slug"].is_string()
            && ws.body["provisioned"] == true
            && ws.body["tunnelBase"] == "localhost",
        "{}",
        ws.text
    );
    let me = admin.get("/api/v1/me").await?;
    ensure!(
        me.status == 200 && me.body["scopes"][0] == "admin",
        "{}",
        me.text
    );
    let status = admin.get("/api/v1/status").await?;
    ensure!(
        status.status == 200
            && status.body["status"] == "running"
            && status.body["counts"]["tenants"] == 1,
        "{}",
        status.text
    );
    let nodes = admin.get("/api/v1/nodes").await?;
    ensure!(
        nodes.status == 200 && nodes.body["nodes"][0]["status"] == "up",
        "{}",
        nodes.text
    );
    let metrics = anon.get("/metrics").await?;
    ensure!(
        metrics.status == 200 && metrics.text.contains("beamd_tunnels_online"),
        "{}",
        metrics.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_minted_shown_once_limited_reset_and_revoked() -> Result<()> {
    let (_dir, edge) = edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let made = admin
        .send(
            "POST",
            "/api/v1/tokens",
            Some(r#"{"label":"ci","limitBytes":1000}"#),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let id = made.body["id"].as_str().context("id")?.to_string();
    let secret = made.body["token"].as_str().context("token")?.to_string();
    ensure!(secret.starts_with(&format!("{id}.")), "{secret}");
    ensure!(made.body["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // Listed without the secret, paged by cursor.
    let all = admin.get("/api/v1/tokens").await?;
    ensure!(
        all.status == 200
            && !all
                .text
                .contains(secret.split('.').nth(1).context("secret")?),
        "no secret in lists"
    );
    ensure!(
        all.body["tokens"].as_array().map(Vec::len) == Some(2),
        "{}",
        all.text
    );
    let first = admin.get("/api/v1/tokens?limit=1").await?;
    let next = first.body["next"]
        .as_str()
        .context("a next cursor")?
        .to_string();
    let second = admin
        .get(&format!("/api/v1/tokens?limit=1&cursor={next}"))
        .await?;
    ensure!(
        second.body["tokens"].as_array().map(Vec::len) == Some(1) && second.body["next"].is_null(),
        "{}",
        second.text
    );
    ensure!(first.body["tokens"][0]["id"] != second.body["tokens"][0]["id"]);
    // Limits and resets.
    let limited = admin
        .send(
            "PUT",
            &format!("/api/v1/tokens/{id}/limit"),
            Some(r#"{"limitBytes":null}"#),
        )
        .await?;
    ensure!(
        limited.status == 200 && limited.body["limitBytes"].is_null(),
        "{}",
        limited.text
    );
    let limited = admin
        .send(
            "PUT",
            &format!("/api/v1/tokens/{id}/limit"),
            Some(r#"{"limitBytes":5}"#),
        )
        .await?;
    ensure!(limited.body["limitBytes"] == 5, "{}", limited.text);
    let reset = admin
        .send("POST", &format!("/api/v1/tokens/{id}/reset"), None)
        .await?;
    ensure!(
        reset.status == 200
            && reset.body["countersResetAt"].is_string()
            && reset.body["bytesUp"] == 0,
        "{}",
        reset.text
    );
    // 400s, with details.
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/tokens".to_string(),
            r#"{"label":"x","color":"red"}"#,
        ),
        ("POST", "/api/v1/tokens".to_string(), r#"{"label":7}"#),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            r#"{"scopes":["root"]}"#,
        ),
        ("POST", "/api/v1/tokens".to_string(), r#"{"label":"x"#),
        ("PUT", format!("/api/v1/tokens/{id}/limit"), r#"{}"#),
        (
            "PUT",
            format!("/api/v1/tokens/{id}/limit"),
            r#"{"limitBytes":-1}"#,
        ),
    ] {
        let a = admin.send(method, &path, Some(body)).await?;
        ensure!(
            a.status == 400 && error_of(&a) == "invalid_request" && a.body["details"].is_object(),
            "{method} {path} {body}: {}",
            a.text
        );
    }
    let long = format!(r#"{{"label":"{}"}}"#, "x".repeat(81));
    let a = admin.send("POST", "/api/v1/tokens", Some(&long)).await?;
    ensure!(a.status == 400, "a label over 80 characters: {}", a.text);
    let big = format!(r#"{{"label":"{}"}}"#, "x".repeat(70_000));
    let a = admin.send("POST", "/api/v1/tokens", Some(&big)).await?;
    ensure!(
        a.status == 413 && error_of(&a) == "payload_too_large",
        "{}",
        a.text
    );
    let a = admin.get("/api/v1/tokens?limit=0").await?;
    ensure!(a.status == 400, "{}", a.text);
    let a = admin.get("/api/v1/tokens?page=2").await?;
    ensure!(a.status == 400, "unknown query parameter: {}", a.text);
    // The new key works; a read-only key may not mint (403).
    let ci = Api::new(edge.api, &secret);
    ensure!(ci.get("/api/v1/workspace").await?.status == 200);
    let denied = ci.send("POST", "/api/v1/tokens", Some("{}")).await?;
    ensure!(
        denied.status == 403 && error_of(&denied) == "forbidden",
        "{}",
        denied.text
    );
    let denied = ci.get("/api/v1/tenants").await?;
    ensure!(denied.status == 403, "{}", denied.text);
    // Revoked: answered once, then 404; the key stops working at once.
    let gone = admin
        .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await?;
    ensure!(
        gone.status == 200 && gone.body == serde_json::json!({"id": id, "revoked": true}),
        "{}",
        gone.text
    );
    let again = admin
        .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await?;
    ensure!(
        again.status == 404 && error_of(&again) == "not_found",
        "{}",
        again.text
    );
    ensure!(
        ci.get("/api/v1/workspace").await?.status == 401,
        "a revoked key is refused"
    );
    let listed = admin.get("/api/v1/tokens").await?;
    let revoked = listed.body["tokens"]
        .as_array()
        .context("tokens")?
        .iter()
        .find(|t| t["id"] == id.as_str())
        .context("listed")?;
    ensure!(revoked["revokedAt"].is_string(), "{revoked}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_resources_are_not_found() -> Result<()> {
    let (_dir, edge) = edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, acme) = tenant(&admin, "acme").await?;
    let tok = admin
        .send("POST", "/api/v1/tokens", Some(r#"{"label":"mine"}"#))
        .await?;
    let tok = tok.body["id"].as_str().context("id")?.to_string();
    let dom = admin
        .send(
            "POST",
            "/api/v1/domains",
            Some(r#"{"host":"app.example.test"}"#),
        )
        .await?;
    ensure!(
        dom.status == 201 && dom.body["txt"]["name"] == "_beamd-challenge.app.example.test",
        "{}",
        dom.text
    );
    ensure!(
        dom.body["status"] == "pending" && dom.body["txt"]["value"].is_string(),
        "{}",
        dom.text
    );
    let dom = dom.body["id"].as_str().context("id")?.to_string();
    // A tunnel of the admin's tenant, opened by a real agent.
    let web = common::http::http_server().await?;
    let (_agent, _, _) = common::http::start_http_agent(&edge, "tcp", web, "web", &[])?;
    let tunnels = admin.get("/api/v1/tunnels").await?;
    let tun = tunnels.body["tunnels"][0].clone();
    ensure!(
        tun["status"] == "online" && tun["protocol"] == "http" && tun["name"] == "web",
        "{}",
        tunnels.text
    );
    ensure!(
        tun["publicUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://web.localhost:")),
        "{tun}"
    );
    let tun = tun["id"].as_str().context("id")?.to_string();
    ensure!(admin.get(&format!("/api/v1/tunnels/{tun}")).await?.status == 200);
    for (method, path) in [
        ("DELETE", format!("/api/v1/tokens/{tok}")),
        ("PUT", format!("/api/v1/tokens/{tok}/limit")),
        ("POST", format!("/api/v1/tokens/{tok}/reset")),
        ("GET", format!("/api/v1/tunnels/{tun}")),
        ("DELETE", format!("/api/v1/tunnels/{tun}")),
        ("POST", format!("/api/v1/domains/{dom}/verify")),
        ("DELETE", format!("/api/v1/domains/{dom}")),
    ] {
        let body = (method == "PUT").then_some(r#"{"limitBytes":1}"#);
        let a = acme.send(method, &path, body).await?;
        ensure!(
            a.status == 404 && error_of(&a) == "not_found",
            "{method} {path} with another tenant's key: {}",
            a.text
        );
    }
    // Lists show only the caller's own.
    for (path, field) in [
        ("/api/v1/tokens", "tokens"),
        ("/api/v1/tunnels", "tunnels"),
        ("/api/v1/domains", "domains"),
        ("/api/v1/requests", "requests"),
    ] {
        let a = acme.get(path).await?;
        let n = a.body[field].as_array().map(Vec::len);
        let expected = if field == "tokens" { 1 } else { 0 };
        ensure!(a.status == 200 && n == Some(expected), "{path}: {}", a.text);
    }
    // The owner releases the tunnel and removes the domain.
    let rel = admin
        .send("DELETE", &format!("/api/v1/tunnels/{tun}"), None)
        .await?;
    ensure!(
        rel.status == 200 && rel.body["released"] == true,
        "{}",
        rel.text
    );
    ensure!(admin.get(&format!("/api/v1/tunnels/{tun}")).await?.status == 404);
    let rm = admin
        .send("DELETE", &format!("/api/v1/domains/{dom}"), None)
        .await?;
    ensure!(
        rm.status == 200 && rm.body["removed"] == true,
        "{}",
        rm.text
    );
    ensure!(
        admin
            .send("DELETE", &format!("/api/v1/domains/{dom}"), None)
            .await?
            .status
            == 404
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_subscribe_and_tenants() -> Result<()> {
    let (_dir, edge) = edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let usage = admin.get("/api/v1/usage").await?;
    ensure!(usage.status == 200, "{}", usage.text);
    ensure!(
        usage.body["series"].as_array().map(Vec::len) == Some(30),
        "30 days by default"
    );
    for field in [
        "plan",
        "limits",
        "used",
        "totalBytes",
        "peakTunnels",
        "eventCount",
        "lastSeen",
    ] {
        ensure!(
            usage.body.get(field).is_some(),
            "usage has {field}: {}",
            usage.text
        );
    }
    ensure!(
        admin.get("/api/v1/usage?days=7").await?.body["series"]
            .as_array()
            .map(Vec::len)
            == Some(7)
    );
    for bad in ["0", "366", "x", "-1"] {
        let a = admin.get(&format!("/api/v1/usage?days={bad}")).await?;
        ensure!(
            a.status == 400 && error_of(&a) == "invalid_request" && !a.body["details"].is_null(),
            "days={bad}: {}",
            a.text
        );
    }
    let hist = admin.get("/api/v1/usage/history?days=3").await?;
    ensure!(
        hist.body["history"].as_array().map(Vec::len) == Some(3),
        "{}",
        hist.text
    );
    let logs = admin.get("/api/v1/logs?statusCode=200").await?;
    ensure!(
        logs.status == 200 && logs.body["count"] == 0,
        "{}",
        logs.text
    );
    // Subscribe: the key authenticates itself.
    let cfg = Api {
        addr: edge.api,
        token: None,
    }
    .get(&format!("/api/v1/subscribe/{ADMIN_TOKEN}"))
    .await?;
    ensure!(
        cfg.status == 200
            && cfg.body["transport"] == "tcp"
            && cfg.body["fingerprint"] == edge.fingerprint.as_str(),
        "{}",
        cfg.text
    );
    let link = call(
        edge.api,
        "GET",
        &format!("/api/v1/subscribe/{ADMIN_TOKEN}"),
        None,
        None,
        &[("accept", "text/plain")],
    )
    .await?;
    ensure!(
        link.status == 200 && link.text.starts_with(&format!("beamd://{ADMIN_TOKEN}@")),
        "{}",
        link.text
    );
    let nope = Api {
        addr: edge.api,
        token: None,
    }
    .get("/api/v1/subscribe/tok_x.wrongwrongwrongwrong")
    .await?;
    ensure!(nope.status == 401, "{}", nope.text);
    // Tenants (admin): create, list, change plan; a duplicate slug conflicts.
    let (id, acme) = tenant(&admin, "acme").await?;
    let dup = admin
        .send("POST", "/api/v1/tenants", Some(r#"{"slug":"acme"}"#))
        .await?;
    ensure!(
        dup.status == 409 && error_of(&dup) == "conflict",
        "{}",
        dup.text
    );
    let list = admin.get("/api/v1/tenants").await?;
    ensure!(
        list.body["tenants"].as_array().map(Vec::len) == Some(2),
        "{}",
        list.text
    );
    let plan = admin
        .send(
            "PUT",
            &format!("/api/v1/tenants/{id}/plan"),
            Some(r#"{"name":"pro","maxTunnels":5}"#),
        )
        .await?;
    ensure!(
        plan.status == 200 && plan.body["plan"]["maxTunnels"] == 5,
        "{}",
        plan.text
    );
    let u = acme.get("/api/v1/usage").await?;
    ensure!(
        u.body["plan"] == "pro" && u.body["limits"]["tunnels"] == 5,
        "{}",
        u.text
    );
    ensure!(
        admin
            .send(
                "PUT",
                "/api/v1/tenants/ten_nope/plan",
                Some(r#"{"name":"x"}"#)
            )
            .await?
            .status
            == 404
    );
    ensure!(
        acme.get("/api/v1/tenants").await?.status == 403,
        "tenants need admin"
    );
    let w = acme.get("/api/v1/workspace").await?;
    ensure!(
        w.body["slug"] == "acme" && w.body["tunnelBase"] == "acme.localhost",
        "{}",
        w.text
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _: Value = w.body;
    Ok(())
}
