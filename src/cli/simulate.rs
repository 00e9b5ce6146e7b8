//! The flags of `beamd simulate`, and the seeds they name.

use std::ops::Range;
use std::process::ExitCode;

use anyhow::{bail, Result};
use beamd_simulations::Faults;

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

fn range(text: &str) -> Result<Range<u64>> {
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
pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    let seeds = match (args.seed, &args.seeds) {
        (Some(s), _) => s..s + 1,
        (None, Some(r)) => range(r)?,
        (None, None) => bail!("give --seed N or --seeds A..B"),
    };
    crate::simulate::run_seeds(seeds, args.steps, args.faults)
}
