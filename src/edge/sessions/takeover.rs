//! Takeover across nodes: when the log says another node resumed a tunnel
//! this node serves (its agent failed over, or reconnected elsewhere before
//! this session timed out), this node stops serving it at once.

use std::sync::Arc;

use beamd_events::log::Follower;
use beamd_events::Event;

use crate::edge::context::EdgeContext;
use crate::metric_catalog;

/// Events read at a time.
const BATCH: usize = 128;

/// Follows the log from its head until the edge stops.
pub async fn follow(ctx: Arc<EdgeContext>) {
    let log = ctx.core.log().clone();
    // Small batches, with a yield after each: this runs on a worker that
    // also serves traffic, and reads every event the log commits.
    let mut follower = Follower::new(log.clone(), log.head().seq + 1, BATCH);
    loop {
        let batch = tokio::select! {
            batch = follower.next_batch() => batch,
            _ = ctx.shutdown.cancelled() => return,
        };
        let Ok(batch) = batch else { return };
        for envelope in batch {
            let Event::TunnelResumed(resumed) = &envelope.event else {
                continue;
            };
            if resumed.node != ctx.node && ctx.evict(envelope.stream.as_str()) {
                metrics::counter!(metric_catalog::TUNNELS_TAKEN_OVER.name).increment(1);
                tracing::info!(tunnel = %envelope.stream, node = %resumed.node, "taken over by another node");
            }
        }
        tokio::task::yield_now().await;
    }
}
