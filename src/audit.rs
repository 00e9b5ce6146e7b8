//! `beamd audit`: verifies the log and that every snapshot equals the fold of
//! the events up to its seq; names the first bad seq.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use beamd_events::envelope::hex;
use beamd_events::log::{ChainReader, Store};
use beamd_events::{Envelope, LogHead, StreamId};
use beamd_snapshots::{Fold, Snapshot, SnapshotStore};

use crate::cli::AuditArgs;
use crate::data_dir::DataDir;
use crate::progress::events_bar;
use crate::projections::LogSummary;

/// The first problem an audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// The first bad seq.
    pub seq: u64,
    /// What is wrong there.
    pub reason: String,
}

/// What a clean audit saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The last event.
    pub head: LogHead,
    /// Distinct streams.
    pub streams: usize,
    /// Snapshots checked against the fold of the log.
    pub snapshots: usize,
}

/// Rebuilds one fold from the log and compares it with its snapshots.
trait SnapshotCheck {
    fn apply(&mut self, env: &Envelope);
    fn matches(&self, snapshot: &Snapshot) -> Result<bool, String>;
}

struct GlobalFold<F: Fold>(F);

impl<F: Fold + PartialEq> SnapshotCheck for GlobalFold<F> {
    fn apply(&mut self, env: &Envelope) {
        self.0.apply(env);
    }
    fn matches(&self, snapshot: &Snapshot) -> Result<bool, String> {
        let stored: F = snapshot.decode().map_err(|e| e.to_string())?;
        Ok(stored == self.0)
    }
}

fn check_for(kind: &str) -> Option<Box<dyn SnapshotCheck>> {
    match kind {
        LogSummary::KIND => Some(Box::new(GlobalFold(LogSummary::default()))),
        _ => None,
    }
}

/// Audits a log and its snapshots.
pub fn audit(
    store: &impl Store,
    snapshots: &dyn SnapshotStore,
    on_event: impl Fn(),
) -> Result<Result<AuditReport, AuditFailure>> {
    let fail = |seq, reason: String| Ok(Err(AuditFailure { seq, reason }));
    // Snapshots are compared in seq order as the scan reaches them, so the
    // failure reported is the first bad seq whether it is an event or a snapshot.
    let mut pending: Vec<Snapshot> = snapshots.all()?;
    pending.sort_by(|a, b| (b.seq, &b.kind, &b.id).cmp(&(a.seq, &a.kind, &a.id)));
    let mut checks: HashMap<(String, String), Box<dyn SnapshotCheck>> = HashMap::new();
    for snap in &pending {
        if let Some(check) = check_for(&snap.kind) {
            checks
                .entry((snap.kind.clone(), snap.id.clone()))
                .or_insert(check);
        }
    }
    let compare_due = |pending: &mut Vec<Snapshot>,
                       checks: &HashMap<(String, String), Box<dyn SnapshotCheck>>,
                       seq: u64|
     -> Option<AuditFailure> {
        while pending.last().is_some_and(|s| s.seq <= seq) {
            let snap = pending.pop()?;
            let failure = |reason| {
                Some(AuditFailure {
                    seq: snap.seq,
                    reason,
                })
            };
            if let Err(e) = snap.verify() {
                return failure(e.to_string());
            }
            let Some(check) = checks.get(&(snap.kind.clone(), snap.id.clone())) else {
                return failure(format!("snapshot of unknown kind {:?}", snap.kind));
            };
            match check.matches(&snap) {
                Ok(true) => {}
                Ok(false) => {
                    return failure(format!(
                        "snapshot {}/{} does not equal the fold of events up to seq {}",
                        snap.kind, snap.id, snap.seq
                    ))
                }
                Err(e) => return failure(e),
            }
        }
        None
    };
    let checked = pending.len();
    if let Some(f) = compare_due(&mut pending, &checks, 0) {
        return Ok(Err(f));
    }
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut head = LogHead::EMPTY;
    for env in ChainReader::new(store, 1, u64::MAX)? {
        let env = match env {
            Ok(env) => env,
            Err(beamd_events::LogError::Corrupt { seq, reason }) => return fail(seq, reason),
            Err(other) => return Err(other.into()),
        };
        let version = versions.entry(env.stream.clone()).or_insert(0);
        if env.version != *version + 1 {
            let reason = format!(
                "stream {} jumps from version {} to {}",
                env.stream, version, env.version
            );
            return fail(env.seq, reason);
        }
        *version = env.version;
        checks.values_mut().for_each(|c| c.apply(&env));
        head = LogHead {
            seq: env.seq,
            hash: env.hash,
        };
        if let Some(f) = compare_due(&mut pending, &checks, env.seq) {
            return Ok(Err(f));
        }
        on_event();
    }
    if let Some(beyond) = pending.last() {
        let reason = format!(
            "snapshot {}/{} is beyond the log's head {}",
            beyond.kind, beyond.id, head.seq
        );
        return fail(beyond.seq, reason);
    }
    for (stream, version) in &versions {
        let indexed = store.stream_version(stream, u64::MAX)?;
        if indexed != *version {
            let reason = format!(
                "stream index says {stream} is at version {indexed}, the log says {version}"
            );
            return fail(head.seq, reason);
        }
    }
    Ok(Ok(AuditReport {
        head,
        streams: versions.len(),
        snapshots: checked,
    }))
}

/// Runs `beamd audit`.
pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let dir = DataDir::open_existing(&args.data_dir)?;
    let store = dir.log_store()?;
    let snapshots = dir.snapshots()?;
    let bar = events_bar(store.last_seq()?, "audit");
    let outcome = audit(store.as_ref(), &snapshots, || bar.inc(1))?;
    bar.finish_and_clear();
    match outcome {
        Ok(report) => {
            println!(
                "audit ok: {} events, {} streams, {} snapshots match; head seq {} hash {}",
                report.head.seq,
                report.streams,
                report.snapshots,
                report.head.seq,
                hex(&report.head.hash)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!(
                "beamd audit: FAILED at seq {}: {}",
                failure.seq, failure.reason
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
