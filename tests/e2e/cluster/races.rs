//! Several edges on one JetStream log, competing:
//! - two nodes racing commands for one tenant (domains against the plan's
//!   limit, the same host names on both) never exceed the limit, never grant
//!   a host twice, and record exactly the events they acknowledged;
//! - an agent on another node takes a name over at once from a connected one;
//! - a pool spans the edges, and a lost edge takes only its members out;
//! - edges started together on an empty log bootstrap it once.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::{tenant, Api};
use common::cluster::{audits_clean, edges_on, eventually, replayed, through, tunnel_named};
use common::http::http_server;
use common::nats::{NatsCluster, NatsServer};
use common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_nodes_respect_limits_and_uniqueness() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let nats = NatsCluster::start();
    let url = nats.url();
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let edges = edges_on(&dirs, &url)?;
    let admin = Api::new(edges[0].api, ADMIN_TOKEN);
    let (tenant_id, acme_a) = tenant(&admin, "acme").await?;
    let plan = admin
        .send(
            "PUT",
            &format!("/api/v1/tenants/{tenant_id}/plan"),
            Some(r#"{"name":"race","maxDomains":6}"#),
        )
        .await?;
    ensure!(plan.status == 200, "{}", plan.text);
    let acme_b = Api {
        addr: edges[1].api,
        ..acme_a.clone()
    };
    eventually("the plan on node 1", || async {
        let u = acme_b.get("/api/v1/usage").await?;
        Ok(u.body["limits"]["domains"] == 6)
    })
    .await?;

    let (mut added, mut removed) = (0usize, 0usize);
    for round in 0..4 {
        // Both nodes, four clients each, race to add the same 10 hosts.
        let mut racers = Vec::new();
        for (node, api) in [(0, &acme_a), (1, &acme_b)] {
            for client in 0..4 {
                let api = api.clone();
                racers.push(tokio::spawn(async move {
                    let mut won = Vec::new();
                    for h in 0..10 {
                        let host = format!(
                            r#"{{"host":"h{}.r{round}.example.com"}}"#,
                            (h + client * 3 + node) % 10
                        );
                        let a = api.send("POST", "/api/v1/domains", Some(&host)).await?;
                        match a.status {
                            201 => won.push(a.body["host"].as_str().context("host")?.to_string()),
                            409 | 403 | 429 => {}
                            s => anyhow::bail!("unexpected {s}: {}", a.text),
                        }
                    }
                    Ok::<_, anyhow::Error>(won)
                }));
            }
        }
        let mut won = Vec::new();
        for r in racers {
            won.extend(r.await??);
        }
        let unique: HashSet<&String> = won.iter().collect();
        ensure!(
            unique.len() == won.len(),
            "round {round}: a host granted twice: {won:?}"
        );
        ensure!(
            won.len() == 6,
            "round {round}: {} domains granted, the limit is 6",
            won.len()
        );
        added += won.len();
        // Both nodes list exactly the granted ones; then node 1 removes them.
        for api in [&acme_a, &acme_b] {
            eventually("the same domains on both nodes", || async {
                let l = api.get("/api/v1/domains").await?;
                let hosts: HashSet<String> = l.body["domains"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .filter_map(|d| d["host"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(hosts.len() == 6 && won.iter().all(|h| hosts.contains(h)))
            })
            .await?;
        }
        let l = acme_b.get("/api/v1/domains").await?;
        for d in l.body["domains"].as_array().context("domains")? {
            let id = d["id"].as_str().context("id")?;
            let gone = acme_b
                .send("DELETE", &format!("/api/v1/domains/{id}"), None)
                .await?;
            ensure!(gone.status == 200, "{}", gone.text);
            removed += 1;
        }
        eventually("no domain left on node 0", || async {
            let l = acme_a.get("/api/v1/domains").await?;
            Ok(l.body["domains"].as_array().is_some_and(|d| d.is_empty()))
        })
        .await?;
    }
    drop(edges);
    let events = replayed(url.clone()).await?;
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    ensure!(
        (count("DomainAdded"), count("DomainRemoved")) == (added, removed),
        "the log holds {} DomainAdded and {} DomainRemoved for {added} and {removed} acknowledged",
        count("DomainAdded"),
        count("DomainRemoved")
    );
    eprintln!("cluster: {added} domains granted over 4 races between two nodes, limit 6 each time");
    audits_clean(url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_another_node_takes_the_name_over_at_once() -> Result<()> {
    let nats = NatsServer::start();
    let url = format!("nats://{}", nats.addr);
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let edges = edges_on(&dirs, &url)?;
    let web = http_server().await?.to_string();
    let agent_on = |edge: &Edge| {
        let addr = edge.agent_addr.to_string();
        let args = [
            "http",
            &web,
            "--name",
            "app",
            "--edge",
            &addr,
            "--transport",
            "tcp",
        ];
        Proc::spawn(&args, &[("BEAMD_TOKEN", ADMIN_TOKEN)])
    };
    let mut first = agent_on(&edges[0])?;
    first.expect("beamd http: tunnel http://app.", Duration::from_secs(30))?;
    let (http0, http1) = (
        edges[0].http.context("http")?,
        edges[1].http.context("http")?,
    );
    ensure!(through(http0, "app.localhost").await? == 200);

    // The first agent is still connected when the second asks for the name.
    let second = agent_on(&edges[1])?;
    second.expect("beamd http: tunnel http://app.", Duration::from_secs(30))?;
    ensure!(through(http1, "app.localhost").await? == 200);
    eventually("node 0 stops serving the name", || async {
        Ok(through(http0, "app.localhost").await? != 200)
    })
    .await?;
    first.exited_within(Duration::from_secs(15)).await?;
    ensure!(
        first.stderr_contains("taken_over"),
        "the first agent is told why it lost the name"
    );
    let api = Api::new(edges[0].api, ADMIN_TOKEN);
    let t = tunnel_named(&api, "app").await?.context("app listed")?;
    ensure!(t["status"] == "online", "{t}");
    drop((first, second, edges));
    audits_clean(url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_spans_the_edges_and_a_lost_edge_takes_only_its_members_out() -> Result<()> {
    let nats = NatsServer::start();
    let url = format!("nats://{}", nats.addr);
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let edges = edges_on(&dirs, &url)?;
    let web = http_server().await?.to_string();
    let member_on = |edge: &Edge| {
        let addr = edge.agent_addr.to_string();
        let args = [
            "http",
            &web,
            "--name",
            "pool",
            "--pool",
            "--edge",
            &addr,
            "--transport",
            "tcp",
        ];
        let agent = Proc::spawn(&args, &[("BEAMD_TOKEN", ADMIN_TOKEN)])?;
        agent.expect("beamd http: tunnel http://pool.", Duration::from_secs(30))?;
        Ok::<_, anyhow::Error>(agent)
    };
    let _a = member_on(&edges[0])?;
    let _b = member_on(&edges[1])?;
    let (http0, http1) = (
        edges[0].http.context("http")?,
        edges[1].http.context("http")?,
    );
    // Each edge serves the name through the member connected to it.
    ensure!(through(http0, "pool.localhost").await? == 200);
    ensure!(through(http1, "pool.localhost").await? == 200);
    let api = Api::new(edges[1].api, ADMIN_TOKEN);
    let nodes = |t: &serde_json::Value| -> HashSet<String> {
        (t["members"].as_array().into_iter().flatten())
            .filter(|m| m["status"] == "serving")
            .filter_map(|m| m["node"].as_str().map(str::to_string))
            .collect()
    };
    eventually("one member on each node", || async {
        let t = tunnel_named(&api, "pool").await?.context("listed")?;
        Ok(nodes(&t).len() == 2)
    })
    .await?;
    // Node 0 dies: once it is taken for dead, its member leaves, and the
    // pool stays online with the member on node 1, which goes on serving.
    edges[0].proc.signal(rustix::process::Signal::KILL)?;
    eventually("node 0's member taken out", || async {
        let t = tunnel_named(&api, "pool").await?.context("listed")?;
        Ok(nodes(&t).len() == 1 && t["status"] == "online")
    })
    .await?;
    ensure!(through(http1, "pool.localhost").await? == 200);
    drop(edges);
    audits_clean(url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_started_together_on_an_empty_log_bootstrap_once() -> Result<()> {
    let nats = NatsServer::start();
    let url = format!("nats://{}", nats.addr);
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let starts: Vec<_> = dirs
        .iter()
        .map(|d| {
            let (dir, url) = (d.path().to_path_buf(), url.clone());
            std::thread::spawn(move || {
                let extra = ["--log", url.as_str()];
                start_edge(&dir, "tcp", "127.0.0.1:0", &extra)
            })
        })
        .collect();
    let mut edges = Vec::new();
    for s in starts {
        edges.push(s.join().map_err(|_| anyhow::anyhow!("start panicked"))??);
    }
    for e in &edges {
        let api = Api::new(e.api, ADMIN_TOKEN);
        eventually("one default tenant, seen by both", || async {
            let t = api.get("/api/v1/tenants").await?;
            Ok(t.status == 200 && t.body["tenants"].as_array().map(Vec::len) == Some(1))
        })
        .await?;
    }
    drop(edges);
    audits_clean(url).await
}
