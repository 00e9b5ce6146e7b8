//! The edge connects on a tenant's behalf only where the egress policy
//! allows: attacks a tenant can make with gateway services, against a real
//! edge — internal addresses in every spelling, a name that resolves to
//! loopback only after it was configured (DNS rebinding, with a real DNS
//! server on 127.0.0.1), the edge's own API, health checks as a port
//! scanner, and `/nodes` naming the API's address.

use crate::common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::{error_of, Api};
use common::dns::address_server;
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::start_edge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An "internal" HTTP service on 127.0.0.1 that answers every request with
/// a secret and counts the connections it got.
async fn internal_service() -> Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "internal secret";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok((port, hits))
}

async fn service(api: &Api, name: &str, url: &str, extra: &str) -> Result<common::api::Answer> {
    api.send(
        "POST",
        "/api/v1/services",
        Some(&format!(
            r#"{{"name":"{name}","targetUrl":"{url}","timeoutMs":2000{extra}}}"#
        )),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_in_every_spelling_are_refused_when_configured() -> Result<()> {
    let (port, hits) = internal_service().await?;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let (_, tenant) = common::api::tenant(&admin, "free").await?;
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.2:{port}/x"),
        format!("http://2130706433:{port}"),
        format!("http://0x7f.1:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://0.0.0.0:{port}"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://100.64.0.1/".to_string(),
        "http://[fd00::1]/".to_string(),
        format!("http://{}", edge.api),
    ] {
        let a = service(&tenant, "internal", &url, "").await?;
        // The policy forbids the address (an IPv6 literal is not even a
        // targetUrl: a host name is).
        let refused = (a.status == 403 && error_of(&a) == "forbidden")
            || (url.contains('[') && a.status == 400 && error_of(&a) == "invalid_request");
        ensure!(refused, "{url} was accepted: {} {}", a.status, a.text);
        ensure!(a.text.contains("targetUrl"), "{url}: {}", a.text);
    }
    ensure!(
        hits.load(Ordering::SeqCst) == 0,
        "the internal service was reached"
    );

    // /nodes shows a tenant the nodes, not where the control plane listens.
    let nodes = tenant.get("/api/v1/nodes").await?;
    ensure!(nodes.status == 200, "{}", nodes.text);
    let api_addr = edge.api.to_string();
    ensure!(
        !nodes.text.contains(&api_addr) && !nodes.text.contains("api="),
        "a tenant sees the API's address: {}",
        nodes.text
    );
    let as_admin = admin.get("/api/v1/nodes").await?;
    ensure!(as_admin.text.contains(&api_addr), "{}", as_admin.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_loopback_later_is_refused_at_connect_time() -> Result<()> {
    let (internal, hits) = internal_service().await?;
    let names = Arc::new(Mutex::new(HashMap::new()));
    // Configured while the name points at a public address (never connected to).
    names
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .insert("api.rebind.test".to_string(), Ipv4Addr::new(1, 1, 1, 1));
    let dns = address_server(names.clone()).await?;
    let resolver = format!("127.0.0.1:{dns}");
    let web = http_server().await?;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--dns-resolver", &resolver],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "shop", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let made = service(
        &admin,
        "rebound",
        &format!("http://api.rebind.test:{internal}"),
        "",
    )
    .await?;
    ensure!(
        made.status == 201,
        "a public name is accepted: {}",
        made.text
    );
    let svc = made.body["id"].as_str().context("id")?.to_string();
    let route = format!(
        r#"{{"host":"{host}","method":"GET","pathPattern":"/internal","serviceId":"{svc}","authRequired":false}}"#
    );
    let made = admin.send("POST", "/api/v1/routes", Some(&route)).await?;
    ensure!(made.status == 201, "{}", made.text);

    // Now the name answers with loopback.
    names
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .insert("api.rebind.test".to_string(), Ipv4Addr::LOCALHOST);
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&host, "/internal")?).await?;
    ensure!(
        status == 502 && body.contains("loopback") && !body.contains("internal secret"),
        "the rebound name reached loopback: {status} {body}"
    );
    ensure!(
        hits.load(Ordering::SeqCst) == 0,
        "the internal service was reached"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_network_works_but_the_edges_own_listeners_do_not() -> Result<()> {
    let (internal, hits) = internal_service().await?;
    let web = http_server().await?;
    let dir = tempfile::tempdir()?;
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
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let http = edge.http.context("http")?;
    for own in [edge.api, http, edge.agent_addr] {
        let a = service(&admin, "own", &format!("http://{own}"), "").await?;
        ensure!(
            a.status == 403 && error_of(&a) == "forbidden" && a.text.contains("own"),
            "the edge's own {own} was accepted: {}",
            a.text
        );
    }
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "ops", &[])?;
    let host = url.split(':').next().context("host")?.to_string();
    let made = service(
        &admin,
        "private",
        &format!("http://127.0.0.1:{internal}"),
        "",
    )
    .await?;
    ensure!(made.status == 201, "an allowed network: {}", made.text);
    let svc = made.body["id"].as_str().context("id")?.to_string();
    let route = format!(
        r#"{{"host":"{host}","method":"GET","pathPattern":"/private","serviceId":"{svc}","authRequired":false}}"#
    );
    let made = admin.send("POST", "/api/v1/routes", Some(&route)).await?;
    ensure!(made.status == 201, "{}", made.text);
    let (status, body) = send(&mut client(public).await?, get(&host, "/private")?).await?;
    ensure!(
        status == 200 && body == "internal secret",
        "{status} {body}"
    );
    ensure!(hits.load(Ordering::SeqCst) == 1, "one connection");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_tells_healthy_or_not_and_nothing_of_the_connection() -> Result<()> {
    let closed_port = common::ClosedPort::bind()?;
    let closed = closed_port.addr.port();
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--health-interval-secs",
            "1",
            "--egress-allow",
            "127.0.0.0/8",
        ],
    )?;
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let made = service(
        &admin,
        "probe",
        &format!("http://127.0.0.1:{closed}"),
        r#","healthCheckPath":"/""#,
    )
    .await?;
    ensure!(made.status == 201, "{}", made.text);
    for _ in 0..100 {
        let a = admin.get("/api/v1/health").await?;
        ensure!(a.status == 200, "{}", a.text);
        if let Some(h) = a.body.as_array().and_then(|v| v.first()) {
            ensure!(h["healthy"] == false, "{h}");
            let detail = h["detail"].as_str().unwrap_or("").to_ascii_lowercase();
            for leak in ["refused", "os error", "reset", "connect"] {
                ensure!(!detail.contains(leak), "the probe tells {leak:?}: {detail}");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no health was recorded")
}
