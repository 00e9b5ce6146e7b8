//! `beamd bench http`: requests per second and latency (p50, p99) of small
//! keep-alive HTTP requests through an HTTP tunnel without capture, with
//! metadata capture and with full capture (headers and bodies too), against
//! the same service reached directly, in one run.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use beamd_events::vocabulary::TransportKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::child::Spawned;

/// Options of `beamd bench http`.
#[derive(Debug, Clone)]
pub struct HttpBenchOptions {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Seconds each path is measured (after a one-second warm-up).
    pub seconds: u64,
    /// The agent's transport.
    pub transport: TransportKind,
    /// More options for both edges, e.g. --edge-args="--durability interval:100".
    pub edge_args: Option<String>,
}

/// The service behind the tunnel: a small fixed answer, over HTTP/1.1
/// only, or (`h2c`) over HTTP/1.1 and h2c with prior knowledge.
pub(super) async fn service(h2c: bool) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let answer = hyper::service::service_fn(|_req| async {
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello from the bench service\n",
                    ))))
                });
                let io = TokioIo::new(socket);
                let _ = match h2c {
                    true => {
                        let b = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        );
                        b.serve_connection(io, answer).await
                    }
                    false => {
                        let b = hyper::server::conn::http1::Builder::new();
                        b.serve_connection(io, answer).await.map_err(Into::into)
                    }
                };
            });
        }
    });
    Ok(addr)
}

/// What one path measured.
pub(super) struct Figures {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl Figures {
    /// Prints the path's row of the table, with its ratio to `direct`.
    pub(super) fn row(&self, name: &str, direct: &Figures) {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} ms | {:.2} ms |",
            self.per_sec,
            self.per_sec / direct.per_sec,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        );
    }
}

/// One keep-alive connection sending GETs until `until`; latencies of those after `from`.
async fn connection(
    addr: SocketAddr,
    host: String,
    from: Instant,
    until: Instant,
) -> Result<Vec<Duration>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut samples = Vec::new();
    loop {
        let started = Instant::now();
        if started >= until {
            return Ok(samples);
        }
        let req = Request::get("/")
            .header(hyper::header::HOST, &host)
            .body(Empty::<Bytes>::new())?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
        resp.into_body().collect().await?;
        if started >= from {
            samples.push(started.elapsed());
        }
    }
}

/// Drives `n` connections at `addr` for the measured time.
async fn measure(addr: SocketAddr, host: &str, n: usize, seconds: u64) -> Result<Figures> {
    let from = Instant::now() + Duration::from_secs(1);
    let until = from + Duration::from_secs(seconds.max(1));
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(connection(addr, host.to_string(), from, until)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Figures {
        per_sec: all.len() as f64 / seconds.max(1) as f64,
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// An edge (as a child process, with `extra` options) and an agent (with
/// `agent_args`) with an HTTP tunnel to `service`; returns them and the
/// public HTTP address.
pub(super) fn tunnel(
    dir: &std::path::Path,
    service: SocketAddr,
    transport: TransportKind,
    agent_args: &[&str],
    extra: &str,
) -> Result<(Spawned, Spawned, SocketAddr)> {
    let token = "tok_bench.0123456789abcdef0123456789abcdef";
    let mut args: Vec<String> = [
        "edge",
        "--data-dir",
        dir.to_str().context("dir")?,
        "--public-host",
        "127.0.0.1",
        "--transport",
        transport.as_str(),
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--no-api",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.split_whitespace().map(String::from));
    let edge = Spawned::spawn(&args, &[("BEAMD_ADMIN_TOKEN", token)])?;
    let (agent_addr, fp) = edge.edge_ready()?;
    let mut agent_line: Vec<String> = [
        "http",
        &service.port().to_string(),
        "--name",
        "bench",
        "--edge",
        &agent_addr,
        "--transport",
        transport.as_str(),
        "--fingerprint",
        &fp,
    ]
    .map(String::from)
    .to_vec();
    agent_line.extend(agent_args.iter().map(|a| a.to_string()));
    let agent = Spawned::spawn(&agent_line, &[("BEAMD_TOKEN", token)])?;
    let line = agent.wait_for_line("tunnel http://")?;
    let port = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|hostport| hostport.rsplit_once(':'))
        .context("public URL")?
        .1
        .to_string();
    Ok((edge, agent, format!("127.0.0.1:{port}").parse()?))
}

/// Runs `beamd bench http`.
pub async fn run(args: HttpBenchOptions) -> Result<ExitCode> {
    let service = service(false).await?;
    let base = std::env::temp_dir().join(format!("beamd-bench-http-{:016x}", fastrand::u64(..)));
    let result = async {
        eprintln!("bench: direct");
        let direct = measure(service, "direct", args.connections, args.seconds).await?;
        println!(
            "| path ({} keep-alive connections, {} s) | requests/s | vs direct | p50 | p99 |",
            args.connections, args.seconds
        );
        println!("|---|---:|---:|---:|---:|");
        let row = |name: &str, f: &Figures| f.row(name, &direct);
        row("direct loopback", &direct);
        for (inspect, label) in [
            ("off", "without capture"),
            ("meta", "with capture"),
            ("full", "with full capture"),
        ] {
            eprintln!(
                "bench: through beamd over {}, {label}",
                args.transport.as_str()
            );
            let dir = base.join(label.replace(' ', "-"));
            let extra = args.edge_args.as_deref().unwrap_or("");
            let (edge, agent, public) = tunnel(
                &dir,
                service,
                args.transport,
                &["--inspect", inspect],
                extra,
            )?;
            let figures =
                measure(public, "bench.localhost", args.connections, args.seconds).await?;
            row(
                &format!("beamd over {}, {label}", args.transport.as_str()),
                &figures,
            );
            drop((agent, edge));
        }
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&base);
    result.map(|_| ExitCode::SUCCESS)
}
