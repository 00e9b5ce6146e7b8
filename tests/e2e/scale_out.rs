//! Two edges on one event log on NATS JetStream (a real nats-server on
//! 127.0.0.1), each with its own data dir: a token created through one edge
//! works on the other, traffic through a tunnel on the second shows as the
//! same usage on both, both nodes are listed on each, and the shared log
//! audits clean. On a three-server cluster (stream replicas 3), kill -9 of
//! one server while commands flow: commands go on, none acknowledged is
//! lost, and the log audits clean.

use crate::common;

use anyhow::{ensure, Context, Result};
use common::api::{new_token, Api};
use common::cluster::{audits_clean, eventually};
use common::nats::{NatsCluster, NatsServer};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_share_one_log() -> Result<()> {
    let nats = NatsServer::start();
    let url = format!("nats://{}", nats.addr);
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let edge_a = start_edge(dir_a.path(), "tcp", "127.0.0.1:0", &["--log", &url])?;
    let mut edge_b = start_edge(dir_b.path(), "tcp", "127.0.0.1:0", &["--log", &url])?;
    let (a, b) = (
        Api::new(edge_a.api, ADMIN_TOKEN),
        Api::new(edge_b.api, ADMIN_TOKEN),
    );

    // A token made on A is known to B.
    let made = new_token(&a, "shared").await?;
    let id = made.body["id"].as_str().context("id")?.to_string();
    let token = made.body["token"].as_str().context("token")?.to_string();
    eventually("the token listed on B", || async {
        Ok(b.get("/api/v1/tokens?limit=200").await?.text.contains(&id))
    })
    .await?;

    // An agent signs in to B with it and carries traffic.
    edge_b.token = Some(token);
    let echo = echo_server().await?;
    let agent = start_agent(&edge_b, "tcp", echo, &[])?;
    round_trip(agent.public, pattern(1, 64 * 1024)).await?;

    // Both edges count the same bytes, and list the tunnel and both nodes.
    let total = |api: &Api| {
        let api = Api::new(api.addr, ADMIN_TOKEN);
        async move {
            let u = api.get("/api/v1/usage?days=1").await?;
            Ok::<_, anyhow::Error>(u.body["totalBytes"].as_u64().unwrap_or(0))
        }
    };
    eventually("the traffic counted on A", || async {
        Ok(total(&a).await? >= 2 * 64 * 1024)
    })
    .await?;
    eventually("the same usage on both", || async {
        Ok(total(&a).await? == total(&b).await?)
    })
    .await?;
    for api in [&a, &b] {
        let nodes = api.get("/api/v1/nodes").await?;
        let n = nodes.body["nodes"].as_array().map_or(0, |n| n.len());
        ensure!(n == 2, "{} lists {n} nodes: {}", api.addr, nodes.text);
        let tunnels = api.get("/api/v1/tunnels").await?;
        ensure!(
            tunnels.body["tunnels"].as_array().map_or(0, |t| t.len()) == 1,
            "{}",
            tunnels.text
        );
    }
    drop(agent);
    drop((edge_a, edge_b));

    audits_clean(url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_on_when_a_nats_server_dies() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let mut cluster = NatsCluster::start();
    let url = cluster.url();
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &["--log", &url])?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 {
            cluster.kill(0);
        }
        let made = api
            .send(
                "POST",
                "/api/v1/tokens",
                Some(&format!(r#"{{"label":"t{i}"}}"#)),
            )
            .await?;
        match made.status {
            201 => acknowledged.push(made.body["id"].as_str().context("id")?.to_string()),
            _ => refused += 1,
        }
    }
    eprintln!(
        "scale_out: one of 3 NATS servers killed after command 20: {} of 60 acknowledged, {refused} refused",
        acknowledged.len()
    );
    let mut edge = edge;
    ensure!(edge.proc_alive(), "the edge died with one NATS server");
    ensure!(
        acknowledged.len() >= 50,
        "{} of 60 commands acknowledged ({refused} refused)",
        acknowledged.len()
    );
    let listed = api.get("/api/v1/tokens?limit=200").await?.text;
    for id in &acknowledged {
        ensure!(
            listed.contains(id.as_str()),
            "acknowledged token {id} is lost"
        );
    }
    drop(edge);
    let url = format!("nats://{},{}", cluster.addrs[1], cluster.addrs[2]);
    audits_clean(url).await
}
