//! Restarting the edge under many agents: after every restart each agent is
//! back within 10 s (they reconnect with jittered backoff), on the same
//! public port, carrying traffic.
//!
//! CI restarts 3 times under 20 agents; the soak is
//! `BEAMD_RESTARTS=50 BEAMD_AGENTS=100 cargo test --release --test e2e restart_agents::`.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_is_back_on_its_port_within_ten_seconds() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let restarts = env_or("BEAMD_RESTARTS", 3);
    let count = env_or("BEAMD_AGENTS", 20);
    let dir = tempfile::tempdir()?;
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let local = echo_server().await?;
    let mut edge = start_edge(dir.path(), "tcp", &listen, &[])?;
    let mut agents = Vec::with_capacity(count);
    for _ in 0..count {
        agents.push(start_agent(&edge, "tcp", local, &[])?);
    }
    let mut slowest = Duration::ZERO;
    for restart in 0..restarts {
        edge.proc.signal(rustix::process::Signal::TERM)?;
        edge.proc.child.wait()?;
        edge = start_edge(dir.path(), "tcp", &listen, &[])?;
        let up = Instant::now();
        let mut waiting: Vec<usize> = (0..count).collect();
        while !waiting.is_empty() {
            ensure!(
                up.elapsed() < Duration::from_secs(10),
                "restart {restart}: {} of {count} agents not back within 10 s",
                waiting.len()
            );
            let mut still = Vec::new();
            for i in waiting {
                let ok = tokio::time::timeout(
                    Duration::from_millis(500),
                    round_trip(agents[i].public, pattern(i, 1024)),
                )
                .await;
                if !matches!(ok, Ok(Ok(()))) {
                    still.push(i);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        slowest = slowest.max(up.elapsed());
    }
    eprintln!(
        "restart_agents: {restarts} restarts under {count} agents, every one back on its port, slowest {slowest:?}"
    );
    Ok(())
}
