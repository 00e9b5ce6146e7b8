//! The REST API against a live edge: authentication on every route, CORS,
//! the OpenAPI document, metrics, usage, subscribe and tenants.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::{api_edge as edge, call, error_of, tenant, Api};
use common::tunnel::ADMIN_TOKEN;
use serde_json::Value;

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
    // Every documented route but the public ones (sign-up and sign-in)
    // refuses a call without a key.
    let mut checked = 0;
    for (path, item) in doc.body["paths"].as_object().context("paths")? {
        if path.starts_with("/api/v1/auth/") {
            continue;
        }
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
        pre.headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            == Some("*"),
        "preflight allows every origin: {:?}",
        pre.headers
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
        ws.status == 200
            && ws
                .headers
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                == Some("*"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_past_their_documented_range_are_refused_not_wrapped() -> Result<()> {
    let (_dir, edge) = edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let made = common::api::new_token(&admin, "limited").await?;
    let id = made.body["id"].as_str().context("id")?.to_string();
    let huge = u64::MAX.to_string();
    let past_int64 = (i64::MAX as u64 + 1).to_string();
    for path in [
        format!("/api/v1/events/stream?after={huge}&maxSeconds=1"),
        format!("/api/v1/events/stream?after={past_int64}&maxSeconds=1"),
        format!("/api/v1/logs?to={huge}"),
        format!("/api/v1/logs?from={past_int64}"),
    ] {
        let a = tokio::time::timeout(Duration::from_secs(10), admin.get(&path))
            .await
            .context(path.clone())??;
        ensure!(
            a.status == 400 && error_of(&a) == "invalid_request",
            "{path}: {} {}",
            a.status,
            a.text
        );
    }
    for (method, path, body) in [
        (
            "PUT",
            format!("/api/v1/tokens/{id}/limit"),
            format!(r#"{{"limitBytes":{huge}}}"#),
        ),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            format!(r#"{{"label":"x","limitBytes":{past_int64}}}"#),
        ),
        (
            "POST",
            "/api/v1/tenants".to_string(),
            r#"{"slug":"big","plan":{"name":"big","maxTunnels":4294967295}}"#.to_string(),
        ),
    ] {
        let a = admin.send(method, &path, Some(&body)).await?;
        ensure!(
            a.status == 400 && error_of(&a) == "invalid_request",
            "{method} {path} {body}: {} {}",
            a.status,
            a.text
        );
    }
    let listed = admin.get("/api/v1/tokens?limit=200").await?;
    let key = listed.body["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|k| k["id"] == id.as_str()))
        .context("the token is listed")?;
    ensure!(key["limitBytes"].is_null(), "the limit changed: {key}");
    Ok(())
}
