//! `beamd bench log`: append and replay throughput of the event log, with raw
//! sled and write + fdatasync of the same record bytes as baselines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use beamd_events::envelope::encode_record;
use beamd_events::log::{ChainReader, SledLog, SledStore};
use beamd_events::vocabulary::TrafficRecorded;
use beamd_events::{
    Append, Durability, Event, EventLog, ExpectedVersion, StreamId, SystemClock, GENESIS_HASH,
};

use super::raw;

/// Options of `beamd bench log`.
#[derive(Debug, Clone)]
pub struct LogBenchOptions {
    /// Where to put the scratch databases (a fresh temporary dir by default; removed afterwards).
    pub dir: Option<PathBuf>,
    /// Multiply every event count by this (e.g. 0.1 for a quick look).
    pub scale: f64,
    /// Events in the log that the replay figures read.
    pub replay_events: u64,
}

const STREAMS: usize = 100;
const INTERVAL: Duration = Duration::from_millis(5);
const WRITERS: usize = 64;

fn event(i: u64) -> Event {
    TrafficRecorded {
        bytes_in: 1_000 + i,
        bytes_out: 20_000 + i,
        connections: 1,
        requests: 3,
        window_ms: 1_000,
        member: None,
        key: None,
        datagrams: 0,
    }
    .into()
}

fn streams() -> Result<Vec<StreamId>> {
    (0..STREAMS)
        .map(|i| Ok(StreamId::new(format!("tun_{i:04}"))?))
        .collect()
}

/// The bytes the log stores for `n` events, for the raw baselines.
fn records(n: usize) -> Result<Vec<Vec<u8>>> {
    let streams = streams()?;
    let mut prev = GENESIS_HASH;
    (0..n)
        .map(|i| {
            let (hash, bytes) = encode_record(
                i as u64 + 1,
                1_700_000_000_000,
                &streams[i % STREAMS],
                (i / STREAMS) as u64 + 1,
                &event(i as u64),
                &prev,
            )?;
            prev = hash;
            Ok(bytes)
        })
        .collect()
}

fn open_log(dir: &Path, durability: Durability) -> Result<(sled::Db, Arc<SledLog>)> {
    let db = sled::open(dir)?;
    let store = Arc::new(SledStore::new(&db)?);
    let (log, _) = SledLog::open(store, Arc::new(SystemClock), durability)?;
    Ok((db, Arc::new(log)))
}

async fn log_append(
    dir: &Path,
    events: usize,
    batch: usize,
    durability: Durability,
) -> Result<Duration> {
    let (_db, log) = open_log(dir, durability)?;
    let streams = streams()?;
    let started = Instant::now();
    for (i, chunk) in (0..events as u64)
        .collect::<Vec<_>>()
        .chunks(batch)
        .enumerate()
    {
        let append = Append::new(
            streams[i % STREAMS].clone(),
            ExpectedVersion::Any,
            chunk.iter().map(|n| event(*n)).collect(),
        );
        log.append(append).await?;
    }
    let elapsed = started.elapsed();
    log.close();
    Ok(elapsed)
}

/// Concurrent single-event appends; with `tree`, the transparency log keeps
/// its tiles and signs a checkpoint every 1,000 events alongside, and the
/// time runs until the tree has caught up with the last append.
async fn log_concurrent(dir: &Path, per_writer: usize, tree: bool) -> Result<Duration> {
    let (db, log) = open_log(dir, Durability::Always)?;
    let streams = streams()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = match tree {
        true => {
            let key = crate::tlog::LogKey::generate("bench.example/log")?;
            let policy = crate::tlog::CheckpointPolicy {
                every: 1_000,
                interval: Duration::from_secs(10),
            };
            let t = Arc::new(crate::tlog::Transparency::open(&db, key, policy)?);
            let dyn_log: Arc<dyn beamd_events::EventLog> = log.clone();
            crate::tlog::spawn(t.clone(), dyn_log, stop.clone())?;
            Some(t)
        }
        false => None,
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (log, stream) = (log.clone(), streams[w % STREAMS].clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer as u64 {
                log.append(Append::new(
                    stream.clone(),
                    ExpectedVersion::Any,
                    vec![event(i)],
                ))
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    if let Some(t) = &keeper {
        while t.tiles().size()? < log.head().seq {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = started.elapsed();
    stop.cancel();
    log.close();
    Ok(elapsed)
}

async fn log_single_latency(dir: &Path, n: usize) -> Result<Duration> {
    let (_db, log) = open_log(dir, Durability::Always)?;
    let stream = StreamId::new("tun_lone")?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        log.append(Append::new(
            stream.clone(),
            ExpectedVersion::Any,
            vec![event(i)],
        ))
        .await?;
        samples.push(t.elapsed());
    }
    log.close();
    Ok(raw::median(&mut samples))
}

fn log_replay(dir: &Path) -> Result<(Duration, u64)> {
    let db = sled::open(dir)?;
    let store = SledStore::new(&db)?;
    let started = Instant::now();
    let mut n = 0;
    for env in ChainReader::new(&store, 1, u64::MAX)? {
        std::hint::black_box(env?);
        n += 1;
    }
    Ok((started.elapsed(), n))
}

fn rate(events: usize, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64().max(1e-9)
}

fn scaled(n: usize, scale: f64, batch: usize) -> usize {
    (((n as f64 * scale) as usize) / batch).max(1) * batch
}

/// Runs `beamd bench log`.
pub async fn run(args: LogBenchOptions) -> Result<ExitCode> {
    let scratch = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("beamd-bench-{:016x}", fastrand::u64(..))),
    };
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let result = run_in(&scratch, &args).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_in(scratch: &Path, args: &LogBenchOptions) -> Result<ExitCode> {
    let mut case = 0;
    let mut fresh = |name: &str| {
        case += 1;
        scratch.join(format!("{case:02}-{name}"))
    };
    let all = records(scaled(102_400, args.scale.max(0.01), 1024))?;
    println!("| durability | events per append | beamd log (events/s) | raw sled (events/s) | log / raw sled | write+fdatasync (events/s) | log / fdatasync |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for durability in [
        Durability::Always,
        Durability::Interval(INTERVAL),
        Durability::Off,
    ] {
        for batch in [1usize, 64, 1024] {
            let base = match (durability, batch) {
                (Durability::Interval(_), 1) => 400,
                (Durability::Interval(_), 64) => 6_400,
                (_, 1) => 2_000,
                (_, 64) => 12_800,
                _ => 102_400,
            };
            let n = scaled(base, args.scale.max(0.01), batch).min(all.len());
            eprintln!("bench: {durability}, {batch} per append, {n} events");
            let log = rate(n, log_append(&fresh("log"), n, batch, durability).await?);
            let sled = rate(
                n,
                raw::sled_append(&fresh("sled"), &all[..n], batch, durability)?,
            );
            let (file, vs_file) = if durability == Durability::Always {
                let f = rate(n, raw::file_append(&fresh("file"), &all[..n], batch)?);
                (format!("{f:.0}"), format!("{:.2}", log / f))
            } else {
                ("–".into(), "–".into())
            };
            println!(
                "| {durability} | {batch} | {log:.0} | {sled:.0} | {:.2} | {file} | {vs_file} |",
                log / sled
            );
        }
    }
    let per_writer = scaled(200, args.scale.max(0.05), 1);
    eprintln!("bench: {WRITERS} concurrent writers × {per_writer} single-event appends");
    let concurrent = rate(
        WRITERS * per_writer,
        log_concurrent(&fresh("concurrent"), per_writer, false).await?,
    );
    let with_tree = rate(
        WRITERS * per_writer,
        log_concurrent(&fresh("concurrent-tree"), per_writer, true).await?,
    );
    // The same batch size: 64 writers with one append in flight each make
    // group-commit batches of at most 64 events.
    let fsync_same = rate(
        all.len(),
        raw::file_append(&fresh("file-writers"), &all, WRITERS)?,
    );
    println!();
    println!("| group commit | events/s |");
    println!("|---|---:|");
    println!(
        "| beamd log, {WRITERS} concurrent writers, 1 event per append, always | {concurrent:.0} |"
    );
    println!("| write+fdatasync, {WRITERS} records per sync | {fsync_same:.0} |");
    println!("| ratio | {:.2} |", concurrent / fsync_same);
    println!("| beamd log with the transparency log (tiles grown, checkpoint signed every 1,000 events) | {with_tree:.0} |");
    println!(
        "| with / without the transparency log | {:.2} |",
        with_tree / concurrent
    );

    let lone = scaled(300, args.scale.max(0.1), 1);
    eprintln!("bench: lone append latency over {lone} appends");
    let log_lat = log_single_latency(&fresh("lone"), lone).await?;
    let sync_lat = raw::file_single_latency(&fresh("lone-file"), &all[0], lone)?;
    println!();
    println!("| lone append (median) | latency |");
    println!("|---|---:|");
    println!(
        "| beamd log append, always | {:.3} ms |",
        log_lat.as_secs_f64() * 1e3
    );
    println!(
        "| one write+fdatasync | {:.3} ms |",
        sync_lat.as_secs_f64() * 1e3
    );
    println!(
        "| ratio | {:.2} |",
        log_lat.as_secs_f64() / sync_lat.as_secs_f64().max(1e-9)
    );

    let r = ((args.replay_events as f64 * args.scale.max(0.01)) as usize / 1024).max(1) * 1024;
    eprintln!("bench: replay of {r} events");
    let replay_dir = fresh("replay");
    log_append(&replay_dir, r, 1024, Durability::Off).await?;
    let raw_dir = fresh("replay-sled");
    raw::sled_append(&raw_dir, &records(r)?, 1024, Durability::Off)?;
    let mut log_runs = Vec::new();
    let mut raw_runs = Vec::new();
    for _ in 0..3 {
        let (d, n) = log_replay(&replay_dir)?;
        anyhow::ensure!(n as usize == r, "replay read {n} of {r} events");
        log_runs.push(d);
        raw_runs.push(raw::sled_iterate(&raw_dir)?.0);
    }
    let log_replay = rate(r, raw::median(&mut log_runs));
    let raw_replay = rate(r, raw::median(&mut raw_runs));
    println!();
    println!("| replay ({r} events, median of 3) | events/s |");
    println!("|---|---:|");
    println!("| beamd log: read, verify chain, decode | {log_replay:.0} |");
    println!("| raw sled: iterate and copy the same bytes | {raw_replay:.0} |");
    println!("| log / raw sled | {:.2} |", log_replay / raw_replay);
    Ok(ExitCode::SUCCESS)
}
