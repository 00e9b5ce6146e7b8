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

mod races;

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::api::{new_token, Api};
use common::cluster::{
    audits_clean, edges_on, eventually, eventually_within, through, total_bytes, tunnel_named,
};
use common::http::http_server;
use common::nats::NatsCluster;
use common::tunnel::{
    echo_server, parse_public, pattern, round_trip, start_agent, Proc, ADMIN_TOKEN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_one_control_plane() -> Result<()> {
    let _turn = common::turns::heavy().await;
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

    // Each live edge keeps the Merkle tree of the one shared log: the same leaves.
    let tile = "/api/v1/log/tile/0/000.p/64";
    eventually("the same tree on both live nodes", || async {
        let (a, b) = (apis[0].get(tile).await?, apis[2].get(tile).await?);
        Ok(a.status == 200 && b.status == 200 && a.raw == b.raw)
    })
    .await?;

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
