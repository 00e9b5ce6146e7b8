//! `beamd bench core`: commands through the actors to durable events, traffic
//! ingest, start-up with and without snapshots on a large log, and the
//! `usage?days=30` query against a full fold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use beamd_events::log::SledLog;
use beamd_events::vocabulary::{
    KeyIssued, KeyKind, Plan, RequestCaptured, TenantCreated, TrafficRecorded, TransportKind,
    TunnelOpened, TunnelProtocol,
};
use beamd_events::{
    Append, Clock, Durability, Event, EventLog, ExpectedVersion, ManualClock, StreamId, SystemClock,
};
use beamd_snapshots::{Fold, MemorySnapshotStore, SnapshotPolicy, SnapshotStore};

use crate::actors::{Core, CoreConfig};
use crate::data_dir::DataDir;
use crate::domain::calendar::DAY_MS;
use crate::domain::{CreateTenant, OpenTunnel, PortRequest, TunnelCommand};
use crate::projections::UsageProjection;

/// Options of `beamd bench core`.
#[derive(Debug, Clone)]
pub struct CoreBenchOptions {
    /// Where to put the scratch data dirs (a fresh temporary dir by default; removed afterwards).
    pub dir: Option<PathBuf>,
    /// Tenants for the command benchmark.
    pub tenants: usize,
    /// Tunnels opened and closed (and then fed traffic) in the command benchmark.
    pub tunnels: usize,
    /// Events in the log for the start-up and query figures.
    pub events: usize,
}

const WRITERS: usize = 64;

/// Opens the data dir and the log, then starts the core; returns how long each took.
async fn open_core_timed(
    dir: &Path,
    snapshots: Option<Arc<dyn SnapshotStore>>,
) -> Result<(Core, DataDir, Duration, Duration)> {
    let t = Instant::now();
    let data = DataDir::create(dir)?;
    let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
    let snapshots = match snapshots {
        Some(s) => s,
        None => Arc::new(data.snapshots()?),
    };
    let mut config = CoreConfig::new(Arc::new(log), snapshots, Arc::new(SystemClock));
    config.policy = SnapshotPolicy {
        every_events: 100_000,
        on_shutdown: true,
    };
    let opened = t.elapsed();
    let t = Instant::now();
    let core = Core::start(config).await?;
    Ok((core, data, opened, t.elapsed()))
}

async fn open_core(
    dir: &Path,
    snapshots: Option<Arc<dyn SnapshotStore>>,
) -> Result<(Core, DataDir)> {
    let (core, data, _, _) = open_core_timed(dir, snapshots).await?;
    Ok((core, data))
}

/// Runs `f(i)` for `0..n` on `WRITERS` concurrent tasks; returns the elapsed time.
async fn fan_out<F, Fut>(n: usize, f: F) -> Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let f = Arc::new(f);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(WRITERS) {
                f(i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

async fn commands(dir: &Path, args: &CoreBenchOptions) -> Result<()> {
    let (core, _data) = open_core(dir, None).await?;
    let core = Arc::new(core);
    let mut keys = Vec::new();
    let started = Instant::now();
    for t in 0..args.tenants {
        let tenant = core
            .create_tenant(CreateTenant {
                slug: format!("t{t}"),
                name: format!("Tenant {t}"),
                plan: Plan {
                    name: "bench".into(),
                    ..Plan::default()
                },
                tunnel_base: format!("t{t}.localhost"),
            })
            .await?;
        keys.push(
            core.issue_key(
                &tenant.id,
                "agent",
                KeyKind::Agent,
                crate::domain::Scopes::default(),
                None,
                crate::domain::Scope::Admin,
            )
            .await?
            .0
            .id,
        );
    }
    let setup = started.elapsed();
    let keys = Arc::new(keys);
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); args.tunnels]));
    let (c, k, i) = (core.clone(), keys.clone(), ids.clone());
    let opens = fan_out(args.tunnels, move |n| {
        let (c, k, i) = (c.clone(), k.clone(), i.clone());
        async move {
            let open = OpenTunnel {
                protocol: TunnelProtocol::Tcp,
                name: None,
                port: PortRequest::Exact {
                    port: 1 + n as u16,
                    from: 1,
                    to: u16::MAX,
                },
                transport: TransportKind::Quic,
                node: "node_bench".into(),
                local_addr: "127.0.0.1:1".into(),
                pool: None,
            };
            let t = c.open_tunnel(&k[n % k.len()], open).await?;
            i.lock().map_err(|_| anyhow::anyhow!("lock"))?[n] = t.id;
            Ok(())
        }
    })
    .await?;
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone());
    let (c, i) = (core.clone(), ids.clone());
    let traffic = fan_out(args.tunnels, move |n| {
        let (c, i) = (c.clone(), i.clone());
        async move {
            c.record_traffic(
                &i[n],
                TrafficRecorded {
                    bytes_in: 1_000,
                    bytes_out: 9_000,
                    connections: 1,
                    requests: 2,
                    window_ms: 1_000,
                    member: None,
                    key: None,
                    datagrams: 0,
                },
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let (c, i) = (core.clone(), ids.clone());
    let closes = fan_out(args.tunnels, move |n| {
        let (c, i) = (c.clone(), i.clone());
        async move {
            c.tunnel_command(&i[n], TunnelCommand::Release).await?;
            Ok(())
        }
    })
    .await?;
    println!("| through the actors (durability always, {WRITERS} concurrent callers) | count | per second |");
    println!("|---|---:|---:|");
    println!(
        "| create tenant + issue key (sequential) | {} | {:.0} |",
        args.tenants,
        rate(args.tenants, setup)
    );
    println!(
        "| open tunnel (directory decides) | {} | {:.0} |",
        args.tunnels,
        rate(args.tunnels, opens)
    );
    println!(
        "| TrafficRecorded at {} active tunnels (one window each) | {} | {:.0} |",
        args.tunnels,
        args.tunnels,
        rate(args.tunnels, traffic)
    );
    println!(
        "| release tunnel (tunnel actors) | {} | {:.0} |",
        args.tunnels,
        rate(args.tunnels, closes)
    );
    core.shutdown().await?;
    Ok(())
}

/// Writes `n` events of one busy tenant spread over a year, straight to the log.
async fn history(dir: &Path, n: usize) -> Result<String> {
    let data = DataDir::create(dir)?;
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms() - 365 * DAY_MS));
    let (log, _) = SledLog::open(data.log_store()?, clock.clone(), Durability::Off)?;
    let tenant = StreamId::new("ten_busy")?;
    let created = TenantCreated {
        slug: "busy".into(),
        name: "Busy".into(),
        plan: Plan {
            name: "bench".into(),
            ..Plan::default()
        },
        tunnel_base: "busy.localhost".into(),
    };
    log.append(Append::new(
        tenant.clone(),
        ExpectedVersion::NoStream,
        vec![created.into()],
    ))
    .await?;
    let key = KeyIssued {
        tenant: tenant.to_string(),
        label: "agent".into(),
        kind: KeyKind::Agent,
        scopes: vec![],
        secret_hash: "0".repeat(64),
        limit_bytes: None,
    };
    log.append(Append::new(
        StreamId::new("tok_busy")?,
        ExpectedVersion::NoStream,
        vec![key.into()],
    ))
    .await?;
    let tunnels = 1_000;
    for t in 0..tunnels {
        let open = TunnelOpened {
            tenant: tenant.to_string(),
            key: "tok_busy".into(),
            protocol: TunnelProtocol::Http,
            name: Some(format!("app{t}")),
            port: None,
            transport: TransportKind::Quic,
            node: "node_bench".into(),
            local_addr: "127.0.0.1:3000".into(),
            pool: false,
        };
        log.append(Append::new(
            StreamId::new(format!("tun_{t:06}"))?,
            ExpectedVersion::NoStream,
            vec![open.into()],
        ))
        .await?;
    }
    let per_batch = 1_000;
    let batches = n.saturating_sub(tunnels + 2) / per_batch;
    let step = 365 * DAY_MS / batches.max(1) as u64;
    for b in 0..batches {
        let events: Vec<Event> = (0..per_batch)
            .map(|i| {
                if i % 4 == 0 {
                    RequestCaptured {
                        method: "GET".into(),
                        path: format!("/p/{i}"),
                        status: 200,
                        ..Default::default()
                    }
                    .into()
                } else {
                    TrafficRecorded {
                        bytes_in: 100,
                        bytes_out: 900,
                        connections: 1,
                        requests: 1,
                        window_ms: 1_000,
                        member: None,
                        key: None,
                        datagrams: 0,
                    }
                    .into()
                }
            })
            .collect();
        let stream = StreamId::new(format!("tun_{:06}", b % tunnels))?;
        log.append(Append::new(stream, ExpectedVersion::Any, events))
            .await?;
        clock.advance(step);
        if b % 100 == 0 {
            eprint!("\rbench: writing history {}/{n}", b * per_batch);
        }
    }
    eprintln!();
    log.close();
    Ok(tenant.to_string())
}

async fn startup(dir: &Path, args: &CoreBenchOptions) -> Result<()> {
    eprintln!("bench: writing a log of {} events", args.events);
    let tenant = history(dir, args.events).await?;
    let events = {
        let data = DataDir::open_existing(dir)?;
        let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
        log.head().seq
    };
    // Without snapshots: an empty snapshot store, so every fold replays the whole log.
    let (core, data, cold_open, cold) =
        open_core_timed(dir, Some(Arc::new(MemorySnapshotStore::new()))).await?;
    core.shutdown().await?;
    drop(core);
    drop(data);
    // Write the snapshots on the sled store once, then time a start that uses them.
    let (core, data) = open_core(dir, None).await?;
    core.shutdown().await?;
    drop(core);
    drop(data);
    let (core, data, warm_open, warm) = open_core_timed(dir, None).await?;
    let now = SystemClock.now_ms();
    let queries = 10_000;
    let t = Instant::now();
    for _ in 0..queries {
        std::hint::black_box(core.queries().usage_series(&tenant, now, 30));
    }
    let per_query = t.elapsed() / queries;
    let t = Instant::now();
    let mut full = UsageProjection::default();
    let mut next = 1;
    loop {
        let batch = core.log().read_from(next, 4096).await?;
        let Some(last) = batch.last() else { break };
        next = last.seq + 1;
        batch.iter().for_each(|e| full.apply(e));
    }
    std::hint::black_box(full.series(&tenant, now, 30));
    let fold = t.elapsed();
    let core = Arc::new(core);
    let over_http = super::api::usage_over_http(core.clone(), &tenant, &[1, 30, 365], 500).await?;
    core.shutdown().await?;
    drop(core);
    drop(data);
    println!();
    println!("| start-up on a log of {events} events | rehydrate (core start) | opening sled and the log first |");
    println!("|---|---:|---:|");
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "| without snapshots (full replay) | {:.3} s | {:.3} s |",
        secs(cold),
        secs(cold_open)
    );
    println!(
        "| with snapshots (snapshot + tail) | {:.3} s | {:.3} s |",
        secs(warm),
        secs(warm_open)
    );
    println!("| speed-up | {:.0}× | |", secs(cold) / secs(warm).max(1e-9));
    println!();
    println!("| usage?days=30 for a tenant with {events} events | time |");
    println!("|---|---:|");
    println!(
        "| from the usage projection (O(days)) | {:.1} µs |",
        per_query.as_secs_f64() * 1e6
    );
    println!("| by folding the whole log | {:.3} s |", fold.as_secs_f64());
    println!();
    println!("| GET /api/v1/usage through the API server (keep-alive, median of 500) | time |");
    println!("|---|---:|");
    for (days, t) in over_http {
        println!("| days={days} | {:.3} ms |", t.as_secs_f64() * 1e3);
    }
    Ok(())
}

/// Runs `beamd bench core`.
pub async fn run(args: CoreBenchOptions) -> Result<ExitCode> {
    let scratch = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("beamd-bench-core-{:016x}", fastrand::u64(..))),
    };
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let result = async {
        commands(&scratch.join("commands"), &args).await?;
        startup(&scratch.join("startup"), &args).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|_| ExitCode::SUCCESS)
}
