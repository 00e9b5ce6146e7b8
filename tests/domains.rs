//! Custom domains end to end: a DNS server on 127.0.0.1 answers the TXT
//! record; a wrong value leaves the domain pending and says what was
//! expected; the right one verifies it and its traffic routes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::Api;
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::{start_edge, ADMIN_TOKEN};

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
    let captured_custom = events
        .iter()
        .filter(|e| e["type"] == "RequestCaptured" && e["event"]["host"] == HOST)
        .count();
    ensure!(
        captured_custom == 2,
        "{captured_custom} requests captured for {HOST}"
    );
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().context("dir")?]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}
