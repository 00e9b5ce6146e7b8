//! Takeover across nodes: when the log says another node resumed a tunnel
//! this node serves (its agent failed over, or reconnected elsewhere before
//! this session timed out), this node stops serving it at once.

use std::sync::Arc;

use beamd_events::log::Follower;
use beamd_events::Event;

use super::context::EdgeContext;

/// Follows the log from its head until the edge stops.
pub(super) async fn follow(ctx: Arc<EdgeContext>) {
    let log = ctx.core.log().clone();
    let mut follower = Follower::new(log.clone(), log.head().seq + 1, 1024);
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
                metrics::counter!("beamd_tunnels_taken_over_total").increment(1);
                tracing::info!(tunnel = %envelope.stream, node = %resumed.node, "taken over by another node");
            }
        }
    }
}
