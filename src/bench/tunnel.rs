//! `beamd bench tunnel`: TCP throughput and connection-setup latency through
//! each transport, against a direct loopback connection in the same run.
//! The edge and the agents are this binary, run as child processes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::child::Spawned;

/// Options of `beamd bench tunnel`.
#[derive(Debug, Clone)]
pub struct TunnelBenchOptions {
    /// MiB each connection sends (and gets echoed back) in the throughput run.
    pub mib: usize,
    /// Concurrent connections in the throughput run.
    pub connections: usize,
    /// Connections timed for the setup latency (median).
    pub setups: usize,
}

async fn echo_server() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// Bytes per second through `addr`: `n` connections each sending `bytes` and reading them back.
async fn throughput(addr: SocketAddr, n: usize, bytes: usize) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let (mut r, mut w) = s.into_split();
            let writer = tokio::spawn(async move {
                let chunk = vec![7u8; 64 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let k = left.min(chunk.len());
                    w.write_all(&chunk[..k]).await?;
                    left -= k;
                }
                w.shutdown().await?;
                anyhow::Ok(())
            });
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < bytes {
                let k = r.read(&mut buf).await?;
                if k == 0 {
                    bail!("echo ended after {got} of {bytes} bytes");
                }
                got += k;
            }
            writer.await??;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((2 * n * bytes) as f64 / started.elapsed().as_secs_f64())
}

/// Median time to connect and get one byte echoed.
async fn setup_latency(addr: SocketAddr, n: usize) -> Result<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

/// Runs `beamd bench tunnel`.
pub async fn run(args: TunnelBenchOptions) -> Result<ExitCode> {
    let echo = echo_server().await?;
    let bytes = args.mib * 1024 * 1024;
    let dir = std::env::temp_dir().join(format!("beamd-bench-tunnel-{:016x}", fastrand::u64(..)));
    let token = "tok_bench.0123456789abcdef0123456789abcdef";
    let result = async {
        let edge = Spawned::spawn(
            &[
                "edge", "--data-dir", dir.to_str().context("dir")?, "--public-host", "127.0.0.1", "--no-api",
                "--transport", "quic", "--transport", "ws", "--transport", "tcp",
                "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
            ]
            .map(String::from),
            &[("BEAMD_ADMIN_TOKEN", token)],
        )?;
        let mut listen = Vec::new();
        for _ in 0..3 {
            let l = edge.wait_for_line("listening")?;
            let mut parts = l.split(' ').skip(3);
            let (name, addr) = (parts.next().context("name")?.to_string(), l.rsplit(' ').next().context("addr")?.to_string());
            listen.push((name, addr));
        }
        let fp = edge.wait_for_line("fingerprint")?.split(' ').nth(4).context("fingerprint")?.to_string();
        edge.wait_for_line(" up; ")?;
        eprintln!("bench: direct");
        let direct_tp = throughput(echo, args.connections, bytes).await?;
        let direct_lat = setup_latency(echo, args.setups).await?;
        println!("| path | throughput (MiB/s, {} connections, echo) | vs direct | connection setup (median) | vs direct |", args.connections);
        println!("|---|---:|---:|---:|---:|");
        println!("| direct loopback | {:.0} | 1.00 | {:.3} ms | 1.00 |", direct_tp / 1048576.0, direct_lat.as_secs_f64() * 1e3);
        let mut agents = Vec::new();
        for (name, addr) in &listen {
            eprintln!("bench: through {name}");
            let agent = Spawned::spawn(
                &[
                    "tcp".into(), echo.port().to_string(), "--edge".into(), addr.clone(), "--transport".into(), name.clone(),
                    "--fingerprint".into(), fp.clone(),
                ],
                &[("BEAMD_TOKEN", token)],
            )?;
            let line = agent.wait_for_line("tunnel tcp://")?;
            let public: SocketAddr = line
                .split("tcp://")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .context("public address")?
                .parse()?;
            let tp = throughput(public, args.connections, bytes).await?;
            let lat = setup_latency(public, args.setups).await?;
            println!(
                "| through beamd, {name} | {:.0} | {:.2} | {:.3} ms | {:.2} |",
                tp / 1048576.0,
                tp / direct_tp,
                lat.as_secs_f64() * 1e3,
                lat.as_secs_f64() / direct_lat.as_secs_f64()
            );
            agents.push(agent);
        }
        drop(agents);
        drop(edge);
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|_| ExitCode::SUCCESS)
}
