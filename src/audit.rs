//! `beamd audit`: verifies the log and that every snapshot equals the fold of
//! the events up to its seq; names the first bad seq.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use beamd_events::envelope::hex;
use beamd_events::log::{ChainReader, JetStreamConfig, JetStreamStore, Store};
use beamd_events::merkle::{leaf_hash, CompactTree};
use beamd_events::{Envelope, LogHead, StreamId};
use beamd_snapshots::{Fold, MemorySnapshotStore, Snapshot, SnapshotStore};

use crate::data_dir::DataDir;
use crate::domain::gateway::{Consumer, ErrorGroup, Route, Service};
use crate::domain::{Account, Directory, DomainName, Key, Node, Tenant, Tunnel};
use crate::progress::events_bar;
use crate::projections::{
    AccountsProjection, CatalogProjection, DomainsProjection, GatewayProjection,
    InspectorProjection, LogSummary, StatusProjection, UsageProjection,
};
use crate::tlog::tree_check::TreeCheck;

/// What `beamd audit` checks.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The data directory to verify.
    pub data_dir: std::path::PathBuf,
    /// A NATS JetStream log to verify instead of the data dir's sled log
    /// (its records only: snapshots and the Merkle tree are each edge's own).
    pub log: Option<String>,
    /// A checkpoint saved earlier (file or `beamd checkpoint --save` directory)
    /// that the log must extend.
    pub since: Option<std::path::PathBuf>,
    /// The log's verifier key for `since` (text or file; none: the one saved
    /// beside the checkpoint, else the data dir's).
    pub public_key: Option<String>,
    /// The witnesses' cosignatures `since` must carry.
    pub quorum: crate::tlog::Quorum,
}

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
    /// The RFC 6962 tree head over the stored events.
    pub tree_root: beamd_events::merkle::TreeHash,
    /// How many events the stored tree (checked against them) holds.
    pub tree_stored: Option<u64>,
}

/// Rebuilds one fold from the log and compares it with its snapshots.
trait SnapshotCheck {
    fn apply(&mut self, env: &Envelope);
    fn matches(&self, snapshot: &Snapshot) -> Result<bool, String>;
}

/// A fold over the whole log, or over one stream when `stream` is set.
struct FoldCheck<F: Fold> {
    stream: Option<String>,
    state: F,
}

impl<F: Fold + PartialEq> SnapshotCheck for FoldCheck<F> {
    fn apply(&mut self, env: &Envelope) {
        if self
            .stream
            .as_deref()
            .is_none_or(|s| s == env.stream.as_str())
        {
            self.state.apply(env);
        }
    }
    fn matches(&self, snapshot: &Snapshot) -> Result<bool, String> {
        let stored: F = snapshot.decode().map_err(|e| e.to_string())?;
        Ok(stored == self.state)
    }
}

fn global<F: Fold + PartialEq + 'static>(state: F) -> Box<dyn SnapshotCheck> {
    Box::new(FoldCheck {
        stream: None,
        state,
    })
}

fn per_stream<F: Fold + PartialEq + 'static>(id: &str) -> Box<dyn SnapshotCheck> {
    Box::new(FoldCheck::<F> {
        stream: Some(id.to_string()),
        state: F::default(),
    })
}

/// Whether a snapshot is of a kind no longer read (`RETIRED_KINDS`).
fn retired(snap: &Snapshot) -> bool {
    crate::projections::RETIRED_KINDS.contains(&snap.kind.as_str())
}

/// The check that rebuilds the fold a snapshot claims to hold; `None` for unknown kinds.
fn check_for(snap: &Snapshot) -> Option<Box<dyn SnapshotCheck>> {
    let id = snap.id.as_str();
    Some(match snap.kind.as_str() {
        LogSummary::KIND => global(LogSummary::default()),
        UsageProjection::KIND => global(UsageProjection::default()),
        StatusProjection::KIND => global(StatusProjection::default()),
        DomainsProjection::KIND => global(DomainsProjection::default()),
        CatalogProjection::KIND => global(CatalogProjection::default()),
        GatewayProjection::KIND => global(GatewayProjection::default()),
        AccountsProjection::KIND => global(AccountsProjection::default()),
        Directory::KIND => global(Directory::default()),
        // The inspector's capacity is configuration: the rebuild uses the snapshot's own.
        InspectorProjection::KIND => {
            let capacity = snap
                .decode::<InspectorProjection>()
                .map(|p| p.capacity)
                .unwrap_or(crate::projections::DEFAULT_RECENT);
            global(InspectorProjection::with_capacity(capacity))
        }
        Tenant::KIND => per_stream::<Tenant>(id),
        Key::KIND => per_stream::<Key>(id),
        Tunnel::KIND => per_stream::<Tunnel>(id),
        DomainName::KIND => per_stream::<DomainName>(id),
        Node::KIND => per_stream::<Node>(id),
        Service::KIND => per_stream::<Service>(id),
        Route::KIND => per_stream::<Route>(id),
        Consumer::KIND => per_stream::<Consumer>(id),
        ErrorGroup::KIND => per_stream::<ErrorGroup>(id),
        Account::KIND => per_stream::<Account>(id),
        _ => return None,
    })
}

/// Audits a log and its snapshots.
pub fn audit(
    store: &impl Store,
    snapshots: &dyn SnapshotStore,
    mut stored_tree: Option<TreeCheck>,
    on_event: impl Fn(),
) -> Result<Result<AuditReport, AuditFailure>> {
    let fail = |seq, reason: String| Ok(Err(AuditFailure { seq, reason }));
    // Snapshots are compared in seq order as the scan reaches them, so the
    // failure reported is the first bad seq whether it is an event or a snapshot.
    let mut pending: Vec<Snapshot> = snapshots.all()?;
    pending.sort_by(|a, b| (b.seq, &b.kind, &b.id).cmp(&(a.seq, &a.kind, &a.id)));
    let mut checks: HashMap<(String, String), Box<dyn SnapshotCheck>> = HashMap::new();
    for snap in &pending {
        if let Some(check) = check_for(snap) {
            checks
                .entry((snap.kind.clone(), snap.id.clone()))
                .or_insert(check);
        }
    }
    // Per-stream checks see only their stream's events; global ones see all.
    let (global_keys, stream_keys): (Vec<_>, Vec<_>) = checks
        .keys()
        .cloned()
        .partition(|(kind, _)| crate::projections::is_global_fold(kind));
    let mut by_stream: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for key in stream_keys {
        by_stream.entry(key.1.clone()).or_default().push(key);
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
            if retired(&snap) {
                continue;
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
    let checked = pending.iter().filter(|s| !retired(s)).count();
    if let Some(f) = compare_due(&mut pending, &checks, 0) {
        return Ok(Err(f));
    }
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut head = LogHead::EMPTY;
    let mut tree = CompactTree::default();
    let mut reader = ChainReader::new(store, 1, u64::MAX)?;
    while let Some(env) = reader.next() {
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
        let leaf = leaf_hash(reader.last_record());
        tree.push(leaf);
        if let Some(check) = stored_tree.as_mut() {
            if let Some((seq, reason)) = check.push(env.seq, leaf)? {
                return fail(seq, reason);
            }
        }
        let streamed = by_stream.get(env.stream.as_str()).into_iter().flatten();
        for key in global_keys.iter().chain(streamed) {
            if let Some(check) = checks.get_mut(key) {
                check.apply(&env);
            }
        }
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
    let tree_stored = stored_tree.as_ref().map(TreeCheck::size);
    if let Some((seq, reason)) = stored_tree.map(TreeCheck::finish).transpose()?.flatten() {
        return fail(seq, reason);
    }
    Ok(Ok(AuditReport {
        tree_stored,
        head,
        streams: versions.len(),
        snapshots: checked,
        tree_root: tree.root(),
    }))
}

/// Runs `beamd audit`.
pub async fn run(args: AuditSettings) -> Result<ExitCode> {
    let (outcome, since) = match &args.log {
        Some(url) => {
            let store = JetStreamStore::open(&JetStreamConfig::parse(url)?).await?;
            let outcome = audit_with_bar(store.as_ref(), &MemorySnapshotStore::new(), None)?;
            (outcome, check_since(&args, store.as_ref(), None)?)
        }
        None => {
            let dir = DataDir::open_existing(&args.data_dir)?;
            let store = dir.log_store()?;
            let tree = TreeCheck::new(beamd_events::tiles::SledTiles::open(dir.db())?)?;
            let outcome = audit_with_bar(store.as_ref(), &dir.snapshots()?, Some(tree))?;
            (outcome, check_since(&args, store.as_ref(), Some(&dir))?)
        }
    };
    let mut good = true;
    match outcome {
        Ok(report) => {
            let stored = match report.tree_stored {
                Some(0) => "; no stored tree yet".to_string(),
                Some(n) => format!("; stored tree of {n} matches"),
                None => String::new(),
            };
            println!(
                "audit ok: {} events, {} streams, {} snapshots match; head seq {} hash {}; tree size {} root {}{stored}",
                report.head.seq,
                report.streams,
                report.snapshots,
                report.head.seq,
                hex(&report.head.hash),
                report.head.seq,
                hex(&report.tree_root)
            );
        }
        Err(failure) => {
            good = false;
            eprintln!(
                "beamd audit: FAILED at seq {}: {}",
                failure.seq, failure.reason
            );
        }
    }
    match since {
        None => {}
        Some(Ok(line)) => println!("since ok: {line}"),
        Some(Err(not)) => {
            good = false;
            match not.seq {
                Some(seq) => eprintln!(
                    "beamd audit: the log does NOT extend the checkpoint: first bad seq {seq}: {}",
                    not.reason
                ),
                None => eprintln!(
                    "beamd audit: the log does NOT extend the checkpoint: {}",
                    not.reason
                ),
            }
        }
    }
    Ok(if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--since`: the saved checkpoint checked against the log.
fn check_since(
    args: &AuditSettings,
    store: &impl Store,
    dir: Option<&DataDir>,
) -> Result<Option<Result<String, crate::tlog::since::NotExtended>>> {
    let Some(path) = &args.since else {
        return Ok(None);
    };
    let saved = crate::tlog::mirror::load(path)?;
    let verifier = match (&args.public_key, &saved.key, dir) {
        (Some(k), _, _) => crate::tlog::mirror::verifier_from(k)?,
        (None, Some(k), _) => crate::tlog::Verifier::parse(k)?,
        (None, None, Some(dir)) => {
            let file = dir.path().join(crate::tlog::VERIFIER_FILE);
            eprintln!(
                "beamd audit: checking the checkpoint's signature with the data dir's own {} (pass --public-key to use the key you hold)",
                file.display()
            );
            crate::tlog::mirror::verifier_from(&file.to_string_lossy())?
        }
        (None, None, None) => {
            anyhow::bail!("--since needs --public-key: no key is saved beside the checkpoint")
        }
    };
    Ok(Some(crate::tlog::since::check(
        store,
        &saved,
        &verifier,
        &args.quorum,
    )?))
}

fn audit_with_bar(
    store: &impl Store,
    snapshots: &dyn SnapshotStore,
    tree: Option<TreeCheck>,
) -> Result<Result<AuditReport, AuditFailure>> {
    let bar = events_bar(store.last_seq()?, "audit");
    let outcome = audit(store, snapshots, tree, || bar.inc(1));
    bar.finish_and_clear();
    outcome
}
