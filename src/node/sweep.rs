//! The periodic sweep of tunnels nobody serves: after this node restarts,
//! on nodes that went silent (killed, cut off: their tunnels would otherwise
//! stay "online" there for ever), and past the grace period (released).

use std::time::Duration;

use anyhow::Result;

use crate::actors::{Core, CoreError};
use crate::domain::NodeStatus;
use crate::domain::TunnelCommand;

/// Takes offline the tunnels the log says `node` serves (only while it
/// still does: a tunnel another node resumed meanwhile is left alone).
async fn take_offline(core: &Core, node: &str, reason: &str) -> Result<(), CoreError> {
    for id in core.directory().await?.online_on(node) {
        let offline = TunnelCommand::GoOffline {
            reason: reason.into(),
            node: Some(node.to_string()),
        };
        core.tunnel_command(&id, offline).await?;
    }
    Ok(())
}

/// After a crash the log still says this node serves its tunnels; none is
/// served until its agent comes back, and the grace period starts now.
pub async fn take_offline_after_restart(core: &Core, node: &str) -> Result<(), CoreError> {
    take_offline(core, node, "edge restarted").await
}

/// Takes offline the tunnels of other nodes whose last heartbeat is older
/// than `silent_after`; their agents find another node, or the grace period
/// releases their names and ports.
pub(super) async fn take_offline_on_silent_nodes(
    core: &Core,
    me: &str,
    silent_after: Duration,
) -> Result<()> {
    let late = silent_after.as_millis() as u64;
    let silent: Vec<String> = {
        let nodes = core.queries().nodes();
        let seen = |n: &crate::domain::Node| n.last_heartbeat.or(n.joined_at).unwrap_or(0);
        // Measured against this node's own last committed heartbeat, not the
        // clock: while the log itself stalls, nobody is taken for dead.
        let Some(now) = nodes.get(me).map(seen) else {
            return Ok(());
        };
        nodes
            .iter()
            .filter(|(id, n)| {
                id.as_str() != me
                    && n.status == NodeStatus::Up
                    && now.saturating_sub(seen(n)) > late
            })
            .map(|(id, _)| id.clone())
            .collect()
    };
    for node in silent {
        tracing::warn!(%node, "node silent for over {silent_after:?}: its tunnels go offline");
        take_offline(core, &node, "edge silent").await?;
    }
    Ok(())
}

/// Releases tunnels whose agent stayed away longer than the grace period.
pub(super) async fn release_expired(core: &Core, grace: Duration) -> Result<()> {
    let cutoff = core.now_ms().saturating_sub(grace.as_millis() as u64);
    for id in core.directory().await?.expired(cutoff) {
        match core.tunnel_command(&id, TunnelCommand::Release).await {
            Ok(_) | Err(CoreError::Domain(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
