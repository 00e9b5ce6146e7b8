//! The log simulation: the real `LogCore` over a fault-injecting `MemoryStore`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use beamd_events::envelope::hex;
use beamd_events::log::{ChainReader, LogCore, MemoryStore, Store};
use beamd_events::vocabulary::TrafficRecorded;
use beamd_events::{Append, Clock, ExpectedVersion, LogError, ManualClock, StreamId};

const STREAMS: u64 = 6;

/// What one simulation run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSimReport {
    /// The seed.
    pub seed: u64,
    /// Events in the log at the end.
    pub events: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Appends refused with a version conflict.
    pub conflicts: u64,
    /// Hex hash of the final head: equal for equal seeds.
    pub head_hash: String,
}

struct Sim {
    rng: fastrand::Rng,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    core: LogCore<MemoryStore>,
    /// Stream versions as the model expects them (written, not only flushed).
    versions: BTreeMap<StreamId, u64>,
    /// The highest seq acknowledged (flushed) and its hash.
    acked: Option<(u64, [u8; 32])>,
    report: LogSimReport,
}

impl Sim {
    fn stream(&mut self) -> Result<StreamId> {
        Ok(StreamId::new(format!("tun_{}", self.rng.u64(0..STREAMS)))?)
    }

    fn append_batch(&mut self) -> Result<()> {
        let mut appends = Vec::new();
        let mut expect_ok = Vec::new();
        let mut staged_versions = self.versions.clone();
        for _ in 0..self.rng.usize(1..6) {
            let stream = self.stream()?;
            let current = staged_versions.get(&stream).copied().unwrap_or(0);
            let expected = match self.rng.u8(0..10) {
                0 => ExpectedVersion::Exact(current + 1), // wrong on purpose
                1..=4 => ExpectedVersion::Any,
                _ => ExpectedVersion::Exact(current),
            };
            let ok = expected.admits(current);
            let n = self.rng.u64(1..4);
            if ok {
                staged_versions.insert(stream.clone(), current + n);
            }
            expect_ok.push(ok);
            let events = (0..n)
                .map(|i| {
                    TrafficRecorded {
                        bytes_in: i,
                        ..Default::default()
                    }
                    .into()
                })
                .collect();
            appends.push(Append::new(stream, expected, events));
        }
        let mut staged = self.core.stage(&appends);
        for (outcome, ok) in staged.outcomes.iter().zip(&expect_ok) {
            match (outcome, ok) {
                (Ok(_), true) => {}
                (Err(LogError::Conflict { .. }), false) => self.report.conflicts += 1,
                (other, _) => bail!("append outcome {other:?}, model expected ok={ok}"),
            }
        }
        self.core.write(&mut staged)?;
        self.versions = staged_versions;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.core.store().flush()?;
        let head = self.core.head();
        if head.seq > 0 {
            self.acked = Some((head.seq, head.hash));
        }
        Ok(())
    }

    fn crash(&mut self) -> Result<()> {
        self.report.crashes += 1;
        self.store.crash(self.rng.bool());
        let clock: Arc<dyn Clock> = self.clock.clone();
        let (core, _) = LogCore::open(self.store.clone(), clock)?;
        self.core = core;
        // The model forgets what was lost: rebuild it from what survived.
        self.versions.clear();
        for env in ChainReader::new(self.store.as_ref(), 1, u64::MAX)? {
            let env = env?;
            self.versions.insert(env.stream, env.version);
        }
        Ok(())
    }

    /// Checks the invariants; `full` walks the whole chain (costly, so not every step).
    fn check(&self, full: bool) -> Result<()> {
        let head = self.core.head();
        if let Some((seq, hash)) = self.acked {
            ensure!(
                head.seq >= seq,
                "acknowledged seq {seq} lost (head {})",
                head.seq
            );
            let bytes = self
                .store
                .get(seq)?
                .context("acknowledged record missing")?;
            let (_, stored) = beamd_events::envelope::verify_record(seq, &bytes)?;
            ensure!(stored == hash, "acknowledged record {seq} changed");
        }
        if !full {
            return Ok(());
        }
        let mut last = (0, beamd_events::GENESIS_HASH);
        for env in ChainReader::new(self.store.as_ref(), 1, u64::MAX)? {
            let env = env?;
            last = (env.seq, env.hash);
        }
        ensure!(
            last == (head.seq, head.hash),
            "the head is not the end of the chain"
        );
        for (stream, version) in &self.versions {
            ensure!(
                self.store.stream_version(stream, u64::MAX)? == *version,
                "stream {stream} index disagrees with the model"
            );
        }
        Ok(())
    }
}

/// Runs `steps` random steps from `seed`, checking the invariants after each.
pub fn run_log_simulation(seed: u64, steps: u64) -> Result<LogSimReport> {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (core, _) = LogCore::open(store.clone(), dyn_clock)?;
    let mut sim = Sim {
        rng: fastrand::Rng::with_seed(seed),
        store,
        clock,
        core,
        versions: BTreeMap::new(),
        acked: None,
        report: LogSimReport {
            seed,
            events: 0,
            crashes: 0,
            conflicts: 0,
            head_hash: String::new(),
        },
    };
    for step in 0..steps {
        sim.clock.advance(sim.rng.u64(0..50));
        let roll = sim.rng.u8(0..100);
        let outcome = match roll {
            0..=64 => sim.append_batch(),
            65..=69 => sim.crash(),
            _ => sim.flush(),
        };
        let full = (65..=69).contains(&roll) || step % 25 == 0 || step + 1 == steps;
        outcome.and_then(|_| sim.check(full)).with_context(|| {
            format!("seed {seed}, step {step}: replay with run_log_simulation({seed}, {steps})")
        })?;
    }
    sim.report.events = sim.core.head().seq;
    sim.report.head_hash = hex(&sim.core.head().hash);
    Ok(sim.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_seeds_hold_every_invariant() {
        for seed in 0..20 {
            let report = run_log_simulation(seed, 400).unwrap();
            assert!(report.crashes > 0 && report.conflicts > 0, "{report:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_log() {
        let a = run_log_simulation(42, 500).unwrap();
        let b = run_log_simulation(42, 500).unwrap();
        assert_eq!(a, b);
        let c = run_log_simulation(43, 500).unwrap();
        assert_ne!(a.head_hash, c.head_hash);
    }
}
