//! `beamd simulate`: beamd's core under a seeded workload and faults, on one
//! thread with virtual time, with its invariants checked after every step
//! (see `simulations/` for the harness).

mod agents;
mod invariants;
mod ledger;
mod public;
mod workload;
mod world;

use std::process::ExitCode;

use anyhow::Result;
use beamd_simulations::{run, Failure, Faults, Outcome};

pub use world::{BeamdWorld, Planted};

/// Runs one seed.
pub fn run_seed(
    seed: u64,
    steps: u64,
    faults: Faults,
    planted: Option<Planted>,
) -> Result<Outcome, Failure> {
    run(seed, steps, |rng| BeamdWorld::new(rng, faults, planted))
}

/// Runs every seed of `seeds` for `steps` steps under `faults`, printing a
/// line per seed when there is one, else progress; stops at the first failure.
pub fn run_seeds(seeds: std::ops::Range<u64>, steps: u64, faults: Faults) -> Result<ExitCode> {
    let total = seeds.end - seeds.start;
    for (i, seed) in seeds.enumerate() {
        match run_seed(seed, steps, faults, None) {
            Ok(o) if total == 1 => {
                println!(
                    "seed {}: {} steps, invariants held; log {}",
                    o.seed, o.steps, o.fingerprint
                )
            }
            Ok(_) => {
                if (i as u64 + 1) % 25 == 0 || i as u64 + 1 == total {
                    eprintln!("simulate: {}/{total} seeds passed", i + 1);
                }
            }
            Err(failure) => {
                eprintln!("{failure}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    if total > 1 {
        println!("{total} seeds × {steps} steps: every invariant held");
    }
    Ok(ExitCode::SUCCESS)
}
