//! The harness: one seed drives a world on a single-threaded tokio runtime
//! with a paused clock; after every step the world's invariants are checked,
//! and a failure names the seed, the step, the invariant and the last steps.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::str::FromStr;

/// How many trace lines a failure shows.
const TRACE: usize = 25;

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Crash and restart at any step, losing what was not flushed.
    pub crash: bool,
    /// A crash may leave a torn record at the tail.
    pub torn: bool,
    /// A flush may fail: the log is poisoned and the process restarts.
    pub flush: bool,
    /// Snapshots at random points (clean restarts and small snapshot intervals).
    pub snapshot: bool,
    /// The agents' transport delays reads (streams overtake each other) and cuts connections.
    pub link: bool,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults {
        crash: true,
        torn: true,
        flush: true,
        snapshot: true,
        link: true,
    };
    /// No fault.
    pub const NONE: Faults = Faults {
        crash: false,
        torn: false,
        flush: false,
        snapshot: false,
        link: false,
    };
}

impl FromStr for Faults {
    type Err = String;

    /// `all`, `none`, or a comma list of `crash`, `torn`, `flush`, `snapshot`, `link`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => return Ok(Faults::ALL),
            "none" | "" => return Ok(Faults::NONE),
            _ => {}
        }
        let mut f = Faults::NONE;
        for part in s.split(',') {
            match part.trim() {
                "crash" => f.crash = true,
                "torn" => f.torn = true,
                "flush" => f.flush = true,
                "snapshot" => f.snapshot = true,
                "link" => f.link = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: use all, none, or crash,torn,flush,snapshot,link"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: String,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &str, detail: impl Into<String>) -> Self {
        Self {
            invariant: invariant.into(),
            detail: detail.into(),
        }
    }
}

/// A failed run: everything needed to reproduce and read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The step at which the invariant broke.
    pub step: u64,
    /// What broke.
    pub violation: Violation,
    /// The last steps, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} failed at step {}: {}: {}",
            self.seed, self.step, self.violation.invariant, self.violation.detail
        )?;
        writeln!(f, "last steps:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "reproduce with: beamd simulate --seed {}", self.seed)
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Steps run.
    pub steps: u64,
    /// What the world says identifies its end state (the log's head hash).
    pub fingerprint: String,
}

/// A simulated world: it takes random steps and checks its invariants.
#[allow(async_fn_in_trait)]
pub trait World: Sized {
    /// Takes one step; returns a line for the trace.
    async fn step(&mut self, step: u64) -> Result<String, Violation>;
    /// Checks the invariants.
    async fn check(&mut self, step: u64) -> Result<(), Violation>;
    /// Ends the run; returns the fingerprint of the end state.
    async fn finish(self) -> Result<String, Violation>;
}

/// Runs `steps` steps of the world `make` builds from `seed`.
///
/// The runtime is single-threaded with a paused clock, and the thread's
/// `fastrand` generator is seeded, so the code under test draws the same
/// numbers for the same seed.
pub fn run<W, F, Fut>(seed: u64, steps: u64, make: F) -> Result<Outcome, Failure>
where
    W: World,
    F: FnOnce(fastrand::Rng) -> Fut,
    Fut: Future<Output = Result<W, Violation>>,
{
    let fail = |step, violation, trace: &VecDeque<String>| Failure {
        seed,
        step,
        violation,
        trace: trace.iter().cloned().collect(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return Err(fail(
                0,
                Violation::new("runtime", e.to_string()),
                &VecDeque::new(),
            ))
        }
    };
    fastrand::seed(seed);
    runtime.block_on(async move {
        let mut trace = VecDeque::new();
        let mut world = make(fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15))
            .await
            .map_err(|v| fail(0, v, &trace))?;
        for step in 0..steps {
            let line = match world.step(step).await {
                Ok(line) => line,
                Err(v) => return Err(fail(step, v, &trace)),
            };
            trace.push_back(format!("{step}: {line}"));
            if trace.len() > TRACE {
                trace.pop_front();
            }
            world.check(step).await.map_err(|v| fail(step, v, &trace))?;
        }
        let fingerprint = world.finish().await.map_err(|v| fail(steps, v, &trace))?;
        Ok(Outcome {
            seed,
            steps,
            fingerprint,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter {
        rng: fastrand::Rng,
        total: u64,
        fail_at: Option<u64>,
    }

    impl World for Counter {
        async fn step(&mut self, step: u64) -> Result<String, Violation> {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let n = self.rng.u64(0..10);
            self.total += n;
            Ok(format!("add {n} at {step}"))
        }
        async fn check(&mut self, step: u64) -> Result<(), Violation> {
            match self.fail_at {
                Some(s) if s == step => Err(Violation::new("planted", "as asked")),
                _ => Ok(()),
            }
        }
        async fn finish(self) -> Result<String, Violation> {
            Ok(self.total.to_string())
        }
    }

    fn counter(
        fail_at: Option<u64>,
    ) -> impl FnOnce(fastrand::Rng) -> std::future::Ready<Result<Counter, Violation>> {
        move |rng| {
            std::future::ready(Ok(Counter {
                rng,
                total: 0,
                fail_at,
            }))
        }
    }

    #[test]
    fn seeds_repeat_and_failures_say_where() {
        let a = run(7, 50, counter(None)).unwrap();
        assert_eq!(a, run(7, 50, counter(None)).unwrap());
        assert_ne!(
            a.fingerprint,
            run(8, 50, counter(None)).unwrap().fingerprint
        );
        let f = run(7, 50, counter(Some(30))).unwrap_err();
        assert_eq!(
            (f.seed, f.step, f.violation.invariant.as_str()),
            (7, 30, "planted")
        );
        assert_eq!(f.trace.len(), TRACE);
        assert!(f.to_string().contains("beamd simulate --seed 7"));
    }

    #[test]
    fn faults_parse() {
        assert_eq!("all".parse::<Faults>(), Ok(Faults::ALL));
        let f: Faults = "crash,torn".parse().unwrap();
        assert!(f.crash && f.torn && !f.flush);
        assert!("boom".parse::<Faults>().is_err());
    }
}
