//! The deterministic simulation: the CI seed set holds every invariant, a
//! seed always gives the same log, and a planted bug is caught.

use crate::common;

use anyhow::{ensure, Result};
use beamd::simulate::{run_seed, Planted};
use beamd_simulations::{Failure, Faults};
use common::{beamd, text};

/// The CI seed set: 200 seeds × 1000 steps, every fault.
const SEEDS: u64 = 200;
const STEPS: u64 = 1_000;

/// Runs `seeds` on two threads (each seed has its own runtime and
/// thread-local generator); the first failure, if any.
fn sweep(seeds: std::ops::Range<u64>, steps: u64, planted: Option<Planted>) -> Option<Failure> {
    let all: Vec<u64> = seeds.collect();
    std::thread::scope(|s| {
        let halves: Vec<_> = all
            .chunks(all.len().div_ceil(2).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .find_map(|&seed| run_seed(seed, steps, Faults::ALL, planted).err())
                })
            })
            .collect();
        halves
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .min_by_key(|f| f.seed)
    })
}

#[test]
fn the_ci_seed_set_holds_every_invariant() -> Result<()> {
    if let Some(failure) = sweep(0..SEEDS, STEPS, None) {
        anyhow::bail!("{failure}");
    }
    Ok(())
}

#[test]
fn the_same_seed_gives_the_same_log_byte_for_byte() -> Result<()> {
    let a = run_seed(11, 600, Faults::ALL, None).map_err(|f| anyhow::anyhow!("{f}"))?;
    let b = run_seed(11, 600, Faults::ALL, None).map_err(|f| anyhow::anyhow!("{f}"))?;
    ensure!(a == b, "{a:?} vs {b:?}");
    let c = run_seed(12, 600, Faults::ALL, None).map_err(|f| anyhow::anyhow!("{f}"))?;
    ensure!(
        a.fingerprint != c.fingerprint,
        "different seeds, different logs"
    );
    Ok(())
}

#[test]
fn a_log_that_acknowledges_before_flushing_is_caught() -> Result<()> {
    let failure = sweep(0..SEEDS, STEPS, Some(Planted::AckBeforeFlush))
        .ok_or_else(|| anyhow::anyhow!("the planted bug went unnoticed in {SEEDS} seeds"))?;
    ensure!(
        failure.violation.invariant == "no acknowledged event is lost across a crash",
        "{failure}"
    );
    ensure!(failure
        .to_string()
        .contains(&format!("beamd simulate --seed {}", failure.seed)));
    Ok(())
}

#[test]
fn the_command_runs_a_seed_and_refuses_bad_input() -> Result<()> {
    let out = beamd(&["simulate", "--seed", "3", "--steps", "200"]);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(text(&out.stdout).starts_with("seed 3: 200 steps, invariants held; log "));
    let again = beamd(&["simulate", "--seed", "3", "--steps", "200"]);
    ensure!(
        again.stdout == out.stdout,
        "the same seed prints the same log hash"
    );
    let swept = beamd(&[
        "simulate",
        "--seeds",
        "0..3",
        "--steps",
        "100",
        "--faults",
        "crash,torn",
    ]);
    ensure!(swept.status.success() && text(&swept.stdout).contains("3 seeds × 100 steps"));
    for (args, says) in [
        (vec!["simulate", "--seeds", "5..3"], "empty"),
        (
            vec!["simulate", "--faults", "boom", "--seed", "1"],
            "unknown fault",
        ),
        (vec!["simulate"], "--seed"),
    ] {
        let bad = beamd(&args);
        ensure!(
            !bad.status.success() && text(&bad.stderr).contains(says),
            "{args:?}: {}",
            text(&bad.stderr)
        );
    }
    Ok(())
}
