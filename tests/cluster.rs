//! Three edges on a three-server NATS JetStream cluster (stream replicas 3),
//! every process on 127.0.0.1, each edge with its own data dir:
//! - a token made on one node works on the others;
//! - traffic through tunnels on two nodes shows as the same usage on all three;
//! - kill -9 of the edge an HTTP agent pushes data through: the agent is back
//!   on another node within 10 s under the same name (and a TCP agent of the
//!   same edge with the same port), and nothing the killed edge acknowledged
//!   is lost; a tunnel whose agent knows only the dead edge is taken
//!   offline by a live node once the dead one's heartbeats are overdue;
//! - kill -9 of a NATS server: writes go on, nothing acknowledged is lost;
//! - the log audits clean afterwards.
//!
//! And two nodes racing commands for one tenant (domains against the plan's
//! limit, the same host names on both) never exceed the limit, never grant a
//! host twice, and record exactly the events they acknowledged.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::api::{new_token, tenant, Api};
use common::cluster::{audits_clean, eventually, eventually_within, replayed};
use common::http::{client, get, http_server, send};
use common::nats::{NatsCluster, NatsServer};
use common::tunnel::{
    echo_server, parse_public, pattern, round_trip, start_agent, start_edge, Edge, Proc,
    ADMIN_TOKEN,
};

/// One edge per data dir, serving agents over TCP and public HTTP, on `url`.
fn edges_on(dirs: &[tempfile::TempDir], url: &str) -> Result<Vec<Edge>> {
    dirs.iter()
        .map(|d| {
            // Heartbeats every second: a node is taken for dead after 3 s,
            // and its tunnels are swept every 2 s.
            let extra = [
                "--log",
                url,
                "--http-listen",
                "127.0.0.1:0",
                "--heartbeat-secs",
                "1",
                "--grace-secs",
                "8",
            ];
            start_edge(d.path(), "tcp", "127.0.0.1:0", &extra)
        })
        .collect()
}

/// Total bytes in the usage answer of `api`.
async fn total_bytes(api: &Api) -> Result<u64> {
    let u = api.get("/api/v1/usage?days=1").await?;
    Ok(u.body["totalBytes"].as_u64().unwrap_or(0))
}

/// A GET through an edge's public HTTP port to the tunnel `host`: its status.
async fn through(edge_http: SocketAddr, host: &str) -> Result<u16> {
    let mut c = client(edge_http).await?;
    Ok(send(&mut c, get(host, "/hello")?).await?.0)
}

/// The tunnel named `name` as `api` lists it.
async fn tunnel_named(api: &Api, name: &str) -> Result<Option<serde_json::Value>> {
    let list = api.get("/api/v1/tunnels").await?;
    Ok(list.body["tunnels"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name).cloned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_one_control_plane() -> Result<()> {
    let mut nats = NatsCluster::start();
    let url = nats.url();
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut edges = edges_on(&dirs, &url)?;
    let apis: Vec<Api> = edges.iter().map(|e| Api::new(e.api, ADMIN_TOKEN)).collect();

    // A token made on node 0 signs agents in on nodes 1 and 2.
    let made = new_token(&apis[0], "cluster").await?;
    let token = made.body["token"].as_str().context("token")?.to_string();
    let id = made.body["id"].as_str().context("id")?.to_string();
    for api in &apis[1..] {
        eventually("the token known on every node", || async {
            Ok(api
                .get("/api/v1/tokens?limit=200")
                .await?
                .text
                .contains(&id))
        })
        .await?;
    }
    for e in edges.iter_mut() {
        e.token = Some(token.clone());
    }

    // A TCP tunnel on node 2, an HTTP tunnel on node 1 (which may fail over to node 0).
    let echo = echo_server().await?;
    let tcp_agent = start_agent(&edges[2], "tcp", echo, &[])?;
    round_trip(tcp_agent.public, pattern(1, 64 * 1024)).await?;
    let web = http_server().await?.to_string();
    let edge_list = format!("{},{}", edges[1].agent_addr, edges[0].agent_addr);
    let http_agent = Proc::spawn(
        &[
            "http",
            &web,
            "--name",
            "app",
            "--edge",
            &edge_list,
            "--transport",
            "tcp",
        ],
        &[("BEAMD_TOKEN", &token)],
    )?;
    http_agent.expect("beamd http: tunnel http://app.", Duration::from_secs(30))?;
    // And a TCP tunnel on node 1 that may fail over to node 0, keeping its port.
    let echo_addr = echo.to_string();
    let tcp_moving = Proc::spawn(
        &[
            "tcp",
            &echo_addr,
            "--edge",
            &edge_list,
            "--transport",
            "tcp",
        ],
        &[("BEAMD_TOKEN", &token)],
    )?;
    let moving_public =
        parse_public(&tcp_moving.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?)?;
    round_trip(moving_public, pattern(2, 16 * 1024)).await?;
    // And one that knows only node 1: when node 1 dies, nobody serves it.
    let only_node1 = edges[1].agent_addr.to_string();
    let stranded = Proc::spawn(
        &[
            "tcp",
            &echo_addr,
            "--edge",
            &only_node1,
            "--transport",
            "tcp",
        ],
        &[("BEAMD_TOKEN", &token)],
    )?;
    let stranded_line = stranded.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    let stranded_id = stranded_line
        .split('(')
        .nth(1)
        .and_then(|r| r.split(',').next())
        .context("tunnel id")?
        .to_string();
    let http = |i: usize| edges[i].http.context("http listener");
    let (http0, http1) = (http(0)?, http(1)?);
    ensure!(through(http1, "app.localhost").await? == 200);

    // The same usage on all three nodes.
    eventually("the traffic counted on node 0", || async {
        Ok(total_bytes(&apis[0]).await? >= 2 * 64 * 1024)
    })
    .await?;
    eventually("the same usage on every node", || async {
        let t = [
            total_bytes(&apis[0]).await?,
            total_bytes(&apis[1]).await?,
            total_bytes(&apis[2]).await?,
        ];
        Ok(t[0] == t[1] && t[1] == t[2])
    })
    .await?;
    eprintln!(
        "cluster: usage {} bytes on all three nodes",
        total_bytes(&apis[0]).await?
    );

    // Commands node 1 acknowledges before it dies.
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let t = new_token(&apis[1], &format!("before-kill-{i}")).await?;
        acknowledged.push(t.body["id"].as_str().context("id")?.to_string());
    }
    let before = tunnel_named(&apis[0], "app").await?.context("app listed")?;
    let (tunnel_id, old_node) = (before["id"].clone(), before["node"].clone());

    // Kill node 1 while requests flow through it.
    let pusher = tokio::spawn(async move {
        let mut served = 0u32;
        while let Ok(200) = through(http1, "app.localhost").await {
            served += 1;
        }
        served
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    edges[1].proc.child.kill()?;
    let killed = Instant::now();
    let served = pusher.await?;
    eventually_within(
        "the agent back on node 0",
        Duration::from_secs(10),
        || async { Ok(through(http0, "app.localhost").await.ok() == Some(200)) },
    )
    .await?;
    eprintln!(
        "cluster: {served} requests through node 1 before kill -9; back on node 0 after {:?}",
        killed.elapsed()
    );
    let line = tcp_moving.expect("beamd tcp: tunnel tcp://", Duration::from_secs(10))?;
    ensure!(
        parse_public(&line)? == moving_public,
        "the TCP tunnel keeps its port on the new node: {line}"
    );
    round_trip(moving_public, pattern(5, 16 * 1024)).await?;
    let after = tunnel_named(&apis[0], "app").await?.context("app listed")?;
    ensure!(
        after["id"] == tunnel_id && after["node"] != old_node && after["status"] == "online",
        "the same tunnel moves to another node: before {before}, after {after}"
    );
    // Node 1 went silent: a live node takes its stranded tunnel offline
    // (the ones that moved stay online).
    eventually("the stranded tunnel offline", || async {
        let t = apis[0]
            .get(&format!("/api/v1/tunnels/{stranded_id}"))
            .await?;
        Ok(t.body["status"] != "online")
    })
    .await?;
    let app = tunnel_named(&apis[2], "app").await?.context("app listed")?;
    ensure!(app["status"] == "online", "{app}");
    let listed = apis[2].get("/api/v1/tokens?limit=200").await?.text;
    for id in &acknowledged {
        ensure!(
            listed.contains(id.as_str()),
            "token {id} acknowledged by the killed node is lost"
        );
    }

    // Kill a NATS server: writes go on, nothing acknowledged is lost.
    nats.kill(0);
    let mut refused = 0;
    for i in 0..20 {
        match new_token(&apis[i % 2 * 2], &format!("after-nats-kill-{i}")).await {
            Ok(t) if t.status == 201 => {
                acknowledged.push(t.body["id"].as_str().context("id")?.to_string())
            }
            _ => refused += 1,
        }
    }
    ensure!(
        refused <= 5,
        "{refused} of 20 writes refused with one NATS server down"
    );
    for api in [&apis[0], &apis[2]] {
        eventually("every acknowledged token on both live nodes", || async {
            let listed = api.get("/api/v1/tokens?limit=200").await?.text;
            Ok(acknowledged.iter().all(|id| listed.contains(id.as_str())))
        })
        .await?;
    }
    drop((http_agent, tcp_agent, tcp_moving, stranded, edges));
    audits_clean(format!("nats://{},{}", nats.addrs[1], nats.addrs[2])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_nodes_respect_limits_and_uniqueness() -> Result<()> {
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
