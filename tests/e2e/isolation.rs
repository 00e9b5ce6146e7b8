//! Tenant isolation, walked from the OpenAPI document so that no route is
//! forgotten: every operation on a tenant's resource by id, called with
//! another tenant's key, answers 404 with the same body as an id that does
//! not exist, and leaves the owner's resources as they were; every operation
//! called with a token that does not exist answers 401.

use crate::common;

use anyhow::{bail, ensure, Context, Result};
use common::api::{api_edge, call, error_of, tenant, Api};
use common::http::{client, get, http_server, send, start_http_agent};

/// The resource kind a path's `{id}` names: its first segment after /api/v1/.
fn kind(path: &str) -> &str {
    path.trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or("")
}

/// A body that passes validation, so that only ownership decides the answer.
fn body_for(method: &str, path: &str) -> Option<&'static str> {
    match (method, kind(path)) {
        ("PUT", "tokens") => Some(r#"{"limitBytes":1000}"#),
        ("PATCH", "services") => Some(r#"{"timeoutMs":2000}"#),
        ("PATCH", "routes") => Some(r#"{"enabled":false}"#),
        ("PATCH", "errors") => Some(r#"{"resolved":true}"#),
        ("GET" | "DELETE", _) => None,
        _ => Some("{}"),
    }
}

async fn created(api: &Api, path: &str, body: &str) -> Result<String> {
    let a = api.send("POST", path, Some(body)).await?;
    ensure!(a.status == 201, "POST {path}: {}", a.text);
    Ok(a.body["id"].as_str().context("id")?.to_string())
}

/// The id of the owner's first captured request, once the inspector has it.
async fn captured(api: &Api) -> Result<String> {
    for _ in 0..100 {
        let listed = api.get("/api/v1/requests").await?;
        if let Some(id) = listed.body["requests"][0]["id"].as_str() {
            return Ok(id.to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("the request through the tunnel was never listed")
}

/// The owner's view once the request's traffic is booked: its tunnel has
/// carried bytes and two reads, more than a traffic window apart, agree (so
/// that only the intruder could change it afterwards, e.g. by resetting a
/// key's counters).
async fn settled_view(api: &Api) -> Result<String> {
    let mut last = String::new();
    for _ in 0..40 {
        let view = owner_view(api).await?;
        let tunnels = api.get("/api/v1/tunnels").await?;
        let carried = tunnels.body["tunnels"][0]["bytesOut"].as_u64().unwrap_or(0) > 0;
        if carried && view == last {
            return Ok(view);
        }
        last = view;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    bail!("the owner's resources never stopped changing: {last}")
}

/// Everything the owner can list, as text, to compare before and after.
async fn owner_view(api: &Api) -> Result<String> {
    let mut all = String::new();
    for path in [
        "/api/v1/tokens",
        "/api/v1/tunnels",
        "/api/v1/domains",
        "/api/v1/services",
        "/api/v1/routes",
        "/api/v1/consumers",
        "/api/v1/requests",
    ] {
        let a = api.get(path).await?;
        ensure!(a.status == 200, "GET {path}: {}", a.text);
        all.push_str(&a.text);
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_key_finds_nothing_and_changes_nothing() -> Result<()> {
    let (_dir, edge) = api_edge()?;
    let owner = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let web = http_server().await?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "shop", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let (status, _) = send(&mut client(public).await?, get(&host, "/hello")?).await?;
    ensure!(status == 200, "a request through the tunnel: {status}");
    let request = captured(&owner).await?;
    let tunnels = owner.get("/api/v1/tunnels").await?;
    let tunnel = tunnels.body["tunnels"][0]["id"]
        .as_str()
        .context("tunnel id")?
        .to_string();
    let token = created(&owner, "/api/v1/tokens", r#"{"label":"mine"}"#).await?;
    let domain = created(&owner, "/api/v1/domains", r#"{"host":"app.example.test"}"#).await?;
    let service = created(
        &owner,
        "/api/v1/services",
        r#"{"name":"shop","tunnel":"shop"}"#,
    )
    .await?;
    let route = created(
        &owner,
        "/api/v1/routes",
        &format!(
            r#"{{"host":"{host}","method":"GET","pathPattern":"/x","serviceId":"{service}","authRequired":false}}"#
        ),
    )
    .await?;
    let consumer = created(
        &owner,
        "/api/v1/consumers",
        r#"{"name":"app","rateLimitTier":"standard"}"#,
    )
    .await?;
    let (_, other) = tenant(&owner, "intruder").await?;
    let before = settled_view(&owner).await?;

    let doc = owner.get("/api/v1/openapi.json").await?;
    let mut walked = 0;
    for (path, item) in doc.body["paths"].as_object().context("paths")? {
        if !path.contains("{id}") || path.starts_with("/api/v1/tenants/") {
            continue; // tenants/{id} is the operator's, refused by scope
        }
        let (mine, missing) = match kind(path) {
            "tokens" => (token.clone(), "tok_0000000000000000"),
            "tunnels" => (tunnel.clone(), "tun_0000000000000000"),
            "domains" => (domain.clone(), "dom_0000000000000000"),
            "services" => (service.clone(), "svc_0000000000000000"),
            "routes" => (route.clone(), "rte_0000000000000000"),
            "consumers" => (consumer.clone(), "con_0000000000000000"),
            "requests" => (request.clone(), "req_0000000000000000"),
            // The owner has no error group; an intruder guessing ids is the same case.
            "errors" => ("err_1111111111111111".into(), "err_0000000000000000"),
            other => bail!("{path}: no resource of kind {other:?} in this walk; add one"),
        };
        for method in item.as_object().context("item")?.keys() {
            let method = method.to_uppercase();
            let body = body_for(&method, path);
            let theirs = other
                .send(&method, &path.replace("{id}", &mine), body)
                .await?;
            let nothing = other
                .send(&method, &path.replace("{id}", missing), body)
                .await?;
            ensure!(
                theirs.status == 404 && error_of(&theirs) == "not_found",
                "{method} {path} with another tenant's key: {}",
                theirs.text
            );
            ensure!(
                theirs.text.replace(&mine, "ID") == nothing.text.replace(missing, "ID"),
                "{method} {path}: another tenant's id answers {} but a missing one {}",
                theirs.text,
                nothing.text
            );
            walked += 1;
        }
    }
    ensure!(walked >= 14, "only {walked} operations walked");
    ensure!(
        owner_view(&owner).await? == before,
        "the intruder changed the owner's resources"
    );

    // A token that does not exist: 401 on every operation.
    let mut refused = 0;
    for (path, item) in doc.body["paths"].as_object().context("paths")? {
        if path.starts_with("/api/v1/auth/") {
            continue; // sign-up and sign-in take no key
        }
        for method in item.as_object().context("item")?.keys() {
            let method = method.to_uppercase();
            let concrete = path.replace("{id}", &token);
            let a = call(
                edge.api,
                &method,
                &concrete,
                Some("tok_0000000000000000.0123456789abcdef0123456789abcdef"),
                body_for(&method, path),
                &[],
            )
            .await?;
            ensure!(
                a.status == 401 && error_of(&a) == "unauthorized",
                "{method} {path} with a made-up token: {}",
                a.text
            );
            refused += 1;
        }
    }
    ensure!(refused >= 24, "only {refused} operations refused");
    Ok(())
}
