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

use anyhow::{bail, Result};
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

/// Options of `beamd simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Run this seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run every seed in A..B (B excluded).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Steps per seed.
    #[arg(long, default_value_t = 1_000)]
    pub steps: u64,
    /// Faults to inject: all, none, or a comma list of crash, torn, flush, snapshot.
    #[arg(long, default_value = "all")]
    pub faults: Faults,
}

fn range(text: &str) -> Result<std::ops::Range<u64>> {
    let Some((a, b)) = text.split_once("..") else {
        bail!("--seeds takes A..B, e.g. 0..200");
    };
    let (a, b): (u64, u64) = (a.parse()?, b.parse()?);
    if a >= b {
        bail!("--seeds {text}: the range is empty");
    }
    Ok(a..b)
}

/// Runs `beamd simulate`.
pub fn run_cli(args: SimulateArgs) -> Result<ExitCode> {
    let seeds = match (args.seed, &args.seeds) {
        (Some(s), _) => s..s + 1,
        (None, Some(r)) => range(r)?,
        (None, None) => bail!("give --seed N or --seeds A..B"),
    };
    let total = seeds.end - seeds.start;
    for (i, seed) in seeds.enumerate() {
        match run_seed(seed, args.steps, args.faults, None) {
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
        println!("{total} seeds × {} steps: every invariant held", args.steps);
    }
    Ok(ExitCode::SUCCESS)
}
