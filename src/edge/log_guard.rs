//! The edge's defences around its event log: every committed record is
//! checked before anything is served, and a log whose writer has failed
//! stops the edge at once.

use anyhow::{Context, Result};
use beamd_events::log::{verify_chain, SledLog};
use beamd_events::EventLog;

/// SIGXFSZ, "file size limit exceeded", on Linux and the BSDs.
pub(super) const SIGXFSZ: i32 = 25;

/// Ends when the log's writer has stopped: after a failed write or flush it
/// acknowledges nothing more.
pub(super) async fn log_stopped(
    committed: &mut tokio::sync::watch::Receiver<beamd_events::LogHead>,
) {
    while committed.changed().await.is_ok() {}
}

/// A failed write or flush is fatal: nobody can know what reached the disk,
/// so the edge stops at once, acknowledging nothing more and writing
/// nothing more; the next start repairs the tail and replays the log.
pub(super) fn log_failed(log: &SledLog) -> ! {
    eprintln!(
        "beamd edge: the event log failed ({}); stopping now, nothing more is acknowledged; start again to replay the log",
        log.poisoned().unwrap_or_else(|| "its writer stopped".into())
    );
    std::process::exit(1)
}

/// Checks every committed record's hash and its link to the one before
/// before anything is served: damaged history (a flipped bit, a lost record)
/// stops the start with the seq named, and nothing is truncated. Snapshots
/// spare the replay, not this check (over a million records a second).
pub(super) fn verify_history(log: &SledLog) -> Result<()> {
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
