//! `beamd bench scale`: the event log and the control plane on sled against
//! NATS JetStream (a three-server cluster on 127.0.0.1, replicas 3) with one
//! and with three writers, in one run: events/s appended straight to the log,
//! and commands/s (POST /api/v1/tokens) through the API of real edges. A
//! node is a log writer of this process in the first, an edge process in the
//! second.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use beamd_events::log::{GroupCommitLog, JetStreamConfig, JetStreamStore, SledLog};
use beamd_events::vocabulary::TrafficRecorded;
use beamd_events::{Append, Durability, EventLog, ExpectedVersion, StreamId, SystemClock};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::child::Spawned;
use super::nats::NatsCluster;

/// Options of `beamd bench scale`.
#[derive(Debug, Clone)]
pub struct ScaleBenchOptions {
    /// Seconds each measurement runs.
    pub seconds: u64,
    /// Concurrent appenders for events/s, spread over the writers.
    pub writers: usize,
    /// Concurrent API clients for commands/s, spread over the edges.
    pub clients: usize,
}

const ADMIN: &str = "tok_benchscale.0123456789abcdef0123456789abcdef";

/// Where a measurement's log lives.
#[derive(Clone, Copy)]
enum Backend {
    Sled,
    JetStream(usize),
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Sled => "sled, 1 node".into(),
            Backend::JetStream(1) => "JetStream (3 servers, R3), 1 node".into(),
            Backend::JetStream(n) => format!("JetStream (3 servers, R3), {n} nodes"),
        }
    }
}

/// Runs `workers` tasks until `run` is over; each counts what it completed
/// in the shared counter. Returns the count.
async fn count_for<W, Fut>(workers: usize, run: Duration, work: W) -> Result<u64>
where
    W: Fn(usize, Instant, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = (0..workers.max(1))
        .map(|i| tokio::spawn(work(i, deadline, done.clone())))
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed))
}

/// Appends single-event batches from `appenders` tasks spread over `logs`
/// for `run`; returns the events acknowledged.
async fn append_load(logs: &[Arc<dyn EventLog>], appenders: usize, run: Duration) -> Result<u64> {
    count_for(appenders, run, |i, deadline, done| {
        let log = logs[i % logs.len()].clone();
        async move {
            let stream = StreamId::new(format!("tun_bench{:03}", i % 100))?;
            while Instant::now() < deadline {
                let event = TrafficRecorded {
                    bytes_in: 1_000,
                    bytes_out: 20_000,
                    connections: 1,
                    requests: 3,
                    window_ms: 1_000,
                    member: None,
                    key: None,
                    datagrams: 0,
                };
                let append = Append::new(stream.clone(), ExpectedVersion::Any, vec![event.into()]);
                log.append(append).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await
}

/// Events/s on `backend`, with its logs opened in this process.
async fn events_per_second(backend: Backend, dir: &Path, args: &ScaleBenchOptions) -> Result<f64> {
    let run = Duration::from_secs(args.seconds);
    // Declared first, dropped last: the logs close while their servers run.
    let mut nats = None;
    let mut _db = None;
    let mut logs: Vec<Arc<dyn EventLog>> = Vec::new();
    match backend {
        Backend::Sled => {
            let db = sled::open(dir.join("sled"))?;
            let store = Arc::new(beamd_events::log::SledStore::new(&db)?);
            _db = Some(db);
            let (log, _) = SledLog::open(store, Arc::new(SystemClock), Durability::Always)?;
            logs.push(Arc::new(log));
        }
        Backend::JetStream(n) => {
            let cluster = NatsCluster::start(dir)?;
            let config = JetStreamConfig::parse(&cluster.url())?;
            nats = Some(cluster);
            for _ in 0..n {
                let store = JetStreamStore::open(&config).await?;
                let (log, _) =
                    GroupCommitLog::open(store, Arc::new(SystemClock), Durability::Always)?;
                logs.push(Arc::new(log));
            }
        }
    }
    let started = Instant::now();
    let events = append_load(&logs, args.writers, run).await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    drop(logs);
    drop(nats);
    Ok(rate)
}

/// Starts an edge on `log` (sled when `None`); returns it and its API address.
fn start_edge(dir: &Path, log: Option<&str>) -> Result<(Spawned, String)> {
    let mut args: Vec<String> = [
        "edge",
        "--data-dir",
        &dir.display().to_string(),
        "--transport",
        "tcp",
        "--listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(url) = log {
        args.extend(["--log".to_string(), url.to_string()]);
    }
    let edge = Spawned::spawn(&args, &[("BEAMD_ADMIN_TOKEN", ADMIN)])?;
    let api = edge.wait_for_line("listening api on")?;
    let api = api.rsplit(' ').next().context("API address")?.to_string();
    edge.wait_for_line(" up; ")?;
    Ok((edge, api))
}

/// POSTs /api/v1/tokens from `clients` keep-alive connections spread over
/// `apis` for `run`; returns the tokens created.
async fn command_load(apis: &[String], clients: usize, run: Duration) -> Result<u64> {
    count_for(clients, run, |i, deadline, done| {
        let api = apis[i % apis.len()].clone();
        async move {
            let io = TokioIo::new(TcpStream::connect(&api).await?);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let req = Request::post("/api/v1/tokens")
                    .header("host", &api)
                    .header("authorization", format!("Bearer {ADMIN}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(br#"{"label":"bench"}"#)))?;
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                anyhow::ensure!(status.as_u16() == 201, "POST /tokens answered {status}");
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await
}

/// Commands/s through the API of edges on `backend`.
async fn commands_per_second(
    backend: Backend,
    dir: &Path,
    args: &ScaleBenchOptions,
) -> Result<f64> {
    let nats = match backend {
        Backend::Sled => None,
        Backend::JetStream(_) => Some(NatsCluster::start(dir)?),
    };
    let url = nats.as_ref().map(NatsCluster::url);
    let edges = match backend {
        Backend::Sled => 1,
        Backend::JetStream(n) => n,
    };
    let mut running = Vec::new();
    for i in 0..edges {
        let edge_dir = dir.join(format!("edge{i}"));
        running.push(start_edge(&edge_dir, url.as_deref())?);
    }
    let apis: Vec<String> = running.iter().map(|(_, api)| api.clone()).collect();
    // Every connection and actor warmed up before the clock starts.
    command_load(&apis, args.clients, Duration::from_millis(500)).await?;
    let started = Instant::now();
    let done = command_load(&apis, args.clients, Duration::from_secs(args.seconds)).await?;
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// Runs `beamd bench scale`.
pub async fn run(args: ScaleBenchOptions) -> Result<ExitCode> {
    let scratch =
        std::env::temp_dir().join(format!("beamd-bench-scale-{:016x}", fastrand::u64(..)));
    let result = measure(&scratch, &args).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn measure(scratch: &Path, args: &ScaleBenchOptions) -> Result<ExitCode> {
    let backends = [Backend::Sled, Backend::JetStream(1), Backend::JetStream(3)];
    let mut rows = Vec::new();
    for (i, backend) in backends.iter().enumerate() {
        crate::say!("measuring {} …", backend.label());
        let events_dir = scratch.join(format!("events{i}"));
        std::fs::create_dir_all(&events_dir)?;
        let events = events_per_second(*backend, &events_dir, args).await?;
        let commands_dir = scratch.join(format!("commands{i}"));
        std::fs::create_dir_all(&commands_dir)?;
        let commands = commands_per_second(*backend, &commands_dir, args).await?;
        rows.push((backend.label(), events, commands));
    }
    crate::say!(
        "\n| log | events/s ({} appenders, 1 event each, durable) | commands/s (POST /api/v1/tokens, {} clients) |",
        args.writers,
        args.clients
    );
    crate::say!("|---|---:|---:|");
    for (label, events, commands) in &rows {
        crate::say!("| {label} | {events:.0} | {commands:.0} |");
    }
    let (sled_events, sled_commands) = (rows[0].1, rows[0].2);
    for (label, events, commands) in &rows[1..] {
        crate::say!(
            "{label}: {:.2}× sled's events/s, {:.2}× sled's commands/s",
            events / sled_events,
            commands / sled_commands
        );
    }
    Ok(ExitCode::SUCCESS)
}
