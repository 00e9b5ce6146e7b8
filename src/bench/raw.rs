//! Baselines for the log benchmark: raw sled and write + fdatasync of the same bytes.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use beamd_events::Durability;

/// Inserts `records` into a fresh sled tree, `batch` per sled batch, flushing
/// per `durability` the way the log acknowledges (interval: wait for the
/// flush that covers the batch). Returns the elapsed time.
pub fn sled_append(
    dir: &Path,
    records: &[Vec<u8>],
    batch: usize,
    durability: Durability,
) -> Result<Duration> {
    let db = sled::open(dir)?;
    let tree = db.open_tree("raw")?;
    let started = Instant::now();
    let mut last_flush = Instant::now();
    for (i, chunk) in records.chunks(batch).enumerate() {
        let mut b = sled::Batch::default();
        for (j, bytes) in chunk.iter().enumerate() {
            b.insert(&((i * batch + j) as u64).to_be_bytes(), bytes.as_slice());
        }
        tree.apply_batch(b)?;
        match durability {
            Durability::Always => {
                db.flush()?;
            }
            Durability::Interval(every) => {
                let due = last_flush + every;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                db.flush()?;
                last_flush = Instant::now();
            }
            Durability::Off => {}
        }
    }
    let elapsed = started.elapsed();
    db.flush()?;
    Ok(elapsed)
}

/// Iterates the tree written by `sled_append`, copying each value out.
pub fn sled_iterate(dir: &Path) -> Result<(Duration, u64)> {
    let db = sled::open(dir)?;
    let tree = db.open_tree("raw")?;
    let started = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    for item in tree.iter() {
        let (_, v) = item?;
        bytes += v.to_vec().len();
        n += 1;
    }
    std::hint::black_box(bytes);
    Ok((started.elapsed(), n))
}

/// Appends `records` to a file, `batch` per write, each followed by fdatasync.
pub fn file_append(path: &Path, records: &[Vec<u8>], batch: usize) -> Result<Duration> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let started = Instant::now();
    let mut buf = Vec::new();
    for chunk in records.chunks(batch) {
        buf.clear();
        for r in chunk {
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(r);
        }
        file.write_all(&buf)?;
        file.sync_data()?;
    }
    Ok(started.elapsed())
}

/// Median latency of `n` single-record write + fdatasync calls.
pub fn file_single_latency(path: &Path, record: &[u8], n: usize) -> Result<Duration> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        file.write_all(record)?;
        file.sync_data()?;
        samples.push(t.elapsed());
    }
    Ok(median(&mut samples))
}

/// The median of some durations.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
