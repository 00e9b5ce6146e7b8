//! Custom domains end to end: a DNS server on 127.0.0.1 answers the TXT
//! record; a wrong value leaves the domain pending and says what was
//! expected; the right one verifies it and its traffic routes. A host
//! reaches a tenant only while it is that tenant's: a removed domain's
//! gateway routes are retired, and pending claims expire and are capped.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::Api;
use common::api::{error_of, tenant};
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::{start_edge, Proc, ADMIN_TOKEN};

use common::dns::dns_server;

const HOST: &str = "app.example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_routes_once_its_txt_record_is_found() -> Result<()> {
    let value = Arc::new(Mutex::new("not-the-token".to_string()));
    let dns = dns_server(HOST, value.clone()).await?;
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let resolver = format!("127.0.0.1:{dns}");
    let edge = start_edge(
        dir.path(),
        "quic",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--dns-resolver",
            &resolver,
            "--domain-recheck-secs",
            "1",
        ],
    )?;
    let (agent, own, public) = start_http_agent(&edge, "quic", web, "app", &["--domain", HOST])?;
    // The wrong value: pending, and the agent is told what to publish.
    let notice = agent.expect("is not verified yet", Duration::from_secs(10))?;
    ensure!(notice.contains("found \"not-the-token\""), "{notice}");
    let token = notice
        .split(&format!("publish TXT _beamd-challenge.{HOST} = \""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the notice names the expected value")?
        .to_string();
    ensure!(
        notice.contains(&format!("with the value \"{token}\"")),
        "{notice}"
    );
    let port = own.rsplit_once(':').context("port")?.1;
    let custom = format!("{HOST}:{port}");
    let mut c = client(public).await?;
    let (status, _) = send(&mut c, get(&custom, "/hello")?).await?;
    ensure!(status == 404, "a pending domain does not route: {status}");
    let (status, _) = send(&mut c, get(&own, "/hello")?).await?;
    ensure!(
        status == 200,
        "the tunnel's own host routes meanwhile: {status}"
    );

    // Verifying through the API looks again, and says what it expected.
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let listed = api.get("/api/v1/domains").await?;
    let id = listed.body["domains"][0]["id"]
        .as_str()
        .context("id")?
        .to_string();
    let checked = api
        .send("POST", &format!("/api/v1/domains/{id}/verify"), None)
        .await?;
    ensure!(
        checked.status == 200 && checked.body["status"] == "pending",
        "{}",
        checked.text
    );
    let failure = checked.body["failure"].as_str().context("failure")?;
    ensure!(
        failure.contains(&token) && failure.contains("not-the-token"),
        "{failure}"
    );

    // Publish the right value: the edge's next check verifies and routes it.
    *value.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = token.clone();
    edge.proc.expect(
        &format!("custom domain {HOST} verified"),
        Duration::from_secs(15),
    )?;
    let (status, body) = send(&mut c, get(&custom, "/hello")?).await?;
    ensure!(
        (status, body.as_str()) == (200, "hello through the tunnel"),
        "a verified domain routes: {status} {body}"
    );
    let (_, seen) = send(&mut c, get(&custom, "/headers")?).await?;
    ensure!(seen == format!("127.0.0.1 {HOST} http"), "{seen}");

    // The API shows it verified; removing it stops routing with the next request.
    let listed = api.get("/api/v1/domains").await?;
    let domain = &listed.body["domains"][0];
    ensure!(
        domain["host"] == HOST && domain["status"] == "verified",
        "{}",
        listed.text
    );
    let id = domain["id"].as_str().context("id")?;
    let removed = api
        .send("DELETE", &format!("/api/v1/domains/{id}"), None)
        .await?;
    ensure!(removed.status == 200, "{}", removed.text);
    let (status, _) = send(&mut c, get(&custom, "/hello")?).await?;
    ensure!(status == 404, "a removed domain does not route: {status}");

    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop((agent, edge));
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    let events: Vec<serde_json::Value> = common::text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    ensure!(of("DomainAdded") == 1, "one DomainAdded");
    ensure!(of("DomainVerified") == 1, "one DomainVerified");
    ensure!(of("DomainRemoved") == 1, "one DomainRemoved");
    ensure!(of("DomainVerificationFailed") >= 1, "the miss is recorded");
    let captured_custom = common::captured_requests(events.iter().cloned())
        .iter()
        .filter(|e| e["event"]["host"] == HOST)
        .count();
    ensure!(
        captured_custom == 2,
        "{captured_custom} requests captured for {HOST}"
    );
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().context("dir")?]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

/// A web server on 127.0.0.1 that answers every request with `text`.
async fn saying(text: &'static str) -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(common::http::full(
                        text,
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// Adds `host` for the caller and verifies it with the DNS server's value set to its token.
async fn claim(api: &Api, host: &str, dns: &Arc<Mutex<String>>) -> Result<String> {
    let added = api
        .send(
            "POST",
            "/api/v1/domains",
            Some(&format!(r#"{{"host":"{host}"}}"#)),
        )
        .await?;
    ensure!(added.status == 201, "{}", added.text);
    let id = added.body["id"].as_str().context("id")?.to_string();
    let token = added.body["txt"]["value"].as_str().context("txt")?;
    *dns.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = token.to_string();
    let checked = api
        .send("POST", &format!("/api/v1/domains/{id}/verify"), None)
        .await?;
    ensure!(
        checked.status == 200 && checked.body["status"] == "verified",
        "{}",
        checked.text
    );
    Ok(id)
}

const SHOP: &str = "shop.example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_domain_no_longer_reaches_its_former_tenant() -> Result<()> {
    let value = Arc::new(Mutex::new(String::new()));
    let dns = dns_server(SHOP, value.clone()).await?;
    let dir = tempfile::tempdir()?;
    let resolver = format!("127.0.0.1:{dns}");
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--dns-resolver", &resolver],
    )?;
    // Tenant A: the domain, a gateway route on it to A's tunnel.
    let a = Api::new(edge.api, ADMIN_TOKEN);
    let (_agent_a, own, public) =
        start_http_agent(&edge, "tcp", saying("tenant A").await?, "a", &[])?;
    let port = own.rsplit_once(':').context("port")?.1;
    let shop = format!("{SHOP}:{port}");
    let domain = claim(&a, SHOP, &value).await?;
    let svc = a
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"a","tunnel":"a"}"#),
        )
        .await?;
    ensure!(svc.status == 201, "{}", svc.text);
    let route = format!(
        r#"{{"host":"{SHOP}","method":"*","pathPattern":"/*","serviceId":"{}","authRequired":false}}"#,
        svc.body["id"].as_str().context("id")?
    );
    let made = a.send("POST", "/api/v1/routes", Some(&route)).await?;
    ensure!(made.status == 201, "{}", made.text);
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&shop, "/")?).await?;
    ensure!(
        (status, body.as_str()) == (200, "tenant A"),
        "{status} {body}"
    );

    // A removes the domain: its route on the host is retired with it.
    let removed = a
        .send("DELETE", &format!("/api/v1/domains/{domain}"), None)
        .await?;
    ensure!(removed.status == 200, "{}", removed.text);
    let (status, body) = send(&mut c, get(&shop, "/")?).await?;
    ensure!(
        status == 404,
        "a removed domain still reaches tenant A: {status} {body}"
    );
    let routes = a.get("/api/v1/routes").await?;
    ensure!(
        routes.body.as_array().is_some_and(Vec::is_empty),
        "the route outlives its domain: {}",
        routes.text
    );

    // B verifies the same host and serves it: the public gets B's content.
    let (_, b) = tenant(&a, "bee").await?;
    claim(&b, SHOP, &value).await?;
    let web_b = saying("tenant B").await?.to_string();
    let agent_b = Proc::spawn(
        &[
            "http",
            &web_b,
            "--name",
            "b",
            "--domain",
            SHOP,
            "--edge",
            &edge.agent_addr.to_string(),
            "--transport",
            "tcp",
            "--fingerprint",
            &edge.fingerprint,
        ],
        &[("BEAMD_TOKEN", b.token.as_deref().context("token")?)],
    )?;
    agent_b.expect("beamd http: tunnel http", Duration::from_secs(30))?;
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&shop, "/")?).await?;
    ensure!(
        (status, body.as_str()) == (200, "tenant B"),
        "B's verified domain answers with {status} {body}"
    );

    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop((agent_b, edge));
    let d = dir.path().to_str().context("dir")?;
    let replay = common::text(&common::beamd(&["replay", "--data-dir", d]).stdout);
    ensure!(
        replay
            .lines()
            .filter(|l| l.contains("\"RouteRetired\""))
            .count()
            == 1,
        "the retirement is an event in the log"
    );
    let audit = common::beamd(&["audit", "--data-dir", d]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_claim_expires() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--domain-claim-ttl", "2s"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, squatter) = tenant(&admin, "squatter").await?;
    let (_, owner) = tenant(&admin, "owner").await?;
    let body = format!(r#"{{"host":"{SHOP}"}}"#);
    let held = squatter
        .send("POST", "/api/v1/domains", Some(&body))
        .await?;
    ensure!(held.status == 201, "{}", held.text);
    let blocked = owner.send("POST", "/api/v1/domains", Some(&body)).await?;
    ensure!(
        blocked.status == 409,
        "a live claim is exclusive: {}",
        blocked.text
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mine = owner.send("POST", "/api/v1/domains", Some(&body)).await?;
    ensure!(
        mine.status == 201,
        "an expired claim still blocks the owner: {}",
        mine.text
    );
    let gone = squatter.get("/api/v1/domains").await?;
    ensure!(
        gone.body["domains"].as_array().is_some_and(Vec::is_empty),
        "{}",
        gone.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_claims_are_capped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, squatter) = tenant(&admin, "squatter").await?;
    // A tenant holds at most 20 pending claims (the default plan's cap).
    let mut last = None;
    for i in 0..21 {
        let a = squatter
            .send(
                "POST",
                "/api/v1/domains",
                Some(&format!(r#"{{"host":"d{i}.example.test"}}"#)),
            )
            .await?;
        last = Some((i, a.status, error_of(&a).to_string(), a.text.clone()));
        if a.status != 201 {
            break;
        }
    }
    let (i, status, code, text) = last.context("tries")?;
    ensure!(
        (i, status, code.as_str()) == (20, 403, "limit_exceeded"),
        "claim {i}: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_whose_domain_is_refused_does_not_stay_online() -> Result<()> {
    // The tunnel is opened in the log before its domain is looked at; a
    // refused domain must not leave it online with no agent behind it.
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let web = http_server().await?.to_string();
    let addr = edge.agent_addr.to_string();
    let args = [
        "http",
        &web,
        "--name",
        "stranded",
        "--domain",
        "not..a.host",
        "--edge",
        &addr,
        "--transport",
        "tcp",
    ];
    let mut agent = Proc::spawn(&args, &[("BEAMD_TOKEN", ADMIN_TOKEN)])?;
    ensure!(
        agent.exited_within(Duration::from_secs(20)).await?,
        "the agent is refused"
    );
    ensure!(agent.stderr_contains("invalid_request"), "and told why");
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let t = common::cluster::tunnel_named(&api, "stranded").await?;
    let t = t.context("opened in the log before the domain was refused")?;
    ensure!(t["status"] == "offline", "the tunnel is not online: {t}");
    Ok(())
}
