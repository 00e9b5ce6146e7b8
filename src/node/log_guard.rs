//! The edge's defences around its event log: every committed record is
//! checked before anything is served, and a log whose writer has failed
//! stops the edge at once.

use std::sync::Arc;

use anyhow::{Context, Result};
use beamd_events::log::{
    verify_chain, GroupCommitLog, JetStreamConfig, JetStreamStore, SledLog, Store,
};
use beamd_events::{EventLog, SystemClock};

use super::settings::NodeSettings;
use crate::data_dir::DataDir;

/// SIGXFSZ, "file size limit exceeded", on Linux and the BSDs.
pub(super) const SIGXFSZ: i32 = 25;

/// Ends when the log's writer has stopped: after a failed write or flush it
/// acknowledges nothing more.
pub(super) async fn log_stopped(
    committed: &mut tokio::sync::watch::Receiver<beamd_events::LogHead>,
) {
    while committed.changed().await.is_ok() {}
}

/// The edge's event log, opened and checked, whichever store it is on.
pub(super) struct OpenedLog {
    /// The log.
    pub log: Arc<dyn EventLog>,
    /// Why its writer stopped, once it has.
    pub poisoned: Box<dyn Fn() -> Option<String> + Send + Sync>,
}

/// Opens the edge's log: the data dir's sled (repairing a torn tail), or a
/// NATS JetStream stream with `--log nats://…`; then checks its history.
pub(super) async fn open_log(settings: &NodeSettings, dir: &DataDir) -> Result<OpenedLog> {
    match &settings.log {
        None => {
            let (log, repair) =
                SledLog::open(dir.log_store()?, Arc::new(SystemClock), settings.durability)
                    .context("cannot open the event log")?;
            if let Some(from) = repair.truncated_from {
                eprintln!(
                    "beamd: recovered a torn log tail: dropped {} unacknowledged record(s) from seq {from}",
                    repair.dropped
                );
            }
            checked(log)
        }
        Some(url) => {
            let config = JetStreamConfig::parse(url)?;
            let store = JetStreamStore::open(&config)
                .await
                .with_context(|| format!("cannot open the event log at {url}"))?;
            let (log, _) = GroupCommitLog::open(store, Arc::new(SystemClock), settings.durability)
                .context("cannot open the event log")?;
            checked(log)
        }
    }
}

fn checked<S: Store>(log: GroupCommitLog<S>) -> Result<OpenedLog> {
    verify_history(&log)?;
    let log = Arc::new(log);
    let watched = log.clone();
    Ok(OpenedLog {
        log,
        poisoned: Box::new(move || watched.poisoned()),
    })
}

/// A failed write or flush is fatal: nobody can know what reached the disk,
/// so the edge stops at once, acknowledging nothing more and writing
/// nothing more; the next start repairs the tail and replays the log.
pub(super) fn log_failed(log: &OpenedLog) -> ! {
    eprintln!(
        "beamd edge: the event log failed ({}); stopping now, nothing more is acknowledged; start again to replay the log",
        (log.poisoned)().unwrap_or_else(|| "its writer stopped".into())
    );
    std::process::exit(1)
}

/// Checks every committed record's hash and its link to the one before
/// before anything is served: damaged history (a flipped bit, a lost record)
/// stops the start with the seq named, and nothing is truncated. Snapshots
/// spare the replay, not this check (over a million records a second).
fn verify_history<S: Store>(log: &GroupCommitLog<S>) -> Result<()> {
    let head = log.head();
    let bar = crate::progress::events_bar(head.seq, "verifying the event log");
    let hash = verify_chain(log.store().as_ref(), head.seq, |seq| bar.set_position(seq))
        .context("the event log is damaged, start refused (`beamd audit` lists the damage)")?;
    bar.finish_and_clear();
    anyhow::ensure!(
        hash == head.hash,
        "the event log's head does not match its chain at seq {}, start refused",
        head.seq
    );
    Ok(())
}
