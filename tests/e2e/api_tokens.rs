//! The REST API's tokens, tunnels and domains against a live edge: minting,
//! paging, limits, resets, revocation, 400s with details, scopes (403), and
//! another tenant's resources answering 404.

use crate::common;

use anyhow::{ensure, Context, Result};
use common::api::{api_edge as edge, error_of, tenant, Api};
use common::tunnel::ADMIN_TOKEN;

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
    // A cursor is a string: thirty digits are a cursor, not a number past int64.
    for list in ["tokens", "tunnels", "domains", "tenants"] {
        let page = admin
            .get(&format!(
                "/api/v1/{list}?cursor=999999999999999999999999999999"
            ))
            .await?;
        ensure!(page.status == 200, "{list}: {}", page.text);
    }
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
