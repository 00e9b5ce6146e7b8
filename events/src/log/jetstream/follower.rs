//! The follower: applies every message of the stream, in order, to a
//! store's local copy, including the store's own (applied once); and
//! catching up directly when the follower lags.

use futures_util::StreamExt;

use async_nats::jetstream::stream::DirectGetErrorKind;

use super::batch::decode_batch;
use super::{
    lock, nats_error, JetStreamStore, FOLLOWER_GRACE, OPEN_TIMEOUT, RETRY_PAUSE, SETUP_TIMEOUT,
};
use crate::error::LogError;

/// Applies every message of the stream in order until the store is dropped
/// or a message does not fit (then the store is marked broken).
pub(super) async fn follow(
    store: std::sync::Weak<JetStreamStore>,
    mut messages: async_nats::jetstream::consumer::pull::Ordered,
) {
    while let Some(next) = messages.next().await {
        let Some(store) = store.upgrade() else { return };
        let outcome = next
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let info = m.info().map_err(|e| e.to_string())?;
                let seq = info.stream_sequence;
                Ok((seq, decode_batch(&m.payload).map_err(|e| e.to_string())?))
            })
            .and_then(|(seq, records)| store.apply(seq, records).map_err(|e| e.to_string()));
        if let Err(why) = outcome {
            tracing::error!("the JetStream log's follower stopped: {why}");
            lock(&store.applied).broken = Some(why);
            store.progress.send_modify(|_| {});
            return;
        }
    }
}

/// Brings the local copy up to at least the message that beat this
/// writer's publish. The follower usually delivers it within moments; when
/// it does not (its consumer is being placed again after a server was
/// lost), the missing messages are read directly from any replica.
pub(super) async fn catch_up(store: &JetStreamStore) -> Result<(), LogError> {
    // The message that beat this writer's publish is usually followed
    // already, or within moments: then that is enough to decide again.
    let target = store.catch_up_to.load(std::sync::atomic::Ordering::Relaxed);
    let mut progress = store.progress.subscribe();
    let followed = target > 0
        && tokio::time::timeout(FOLLOWER_GRACE, progress.wait_for(|m| *m >= target))
            .await
            .is_ok();
    if followed {
        return Ok(());
    }
    // The follower is stalled (its consumer is being placed again after a
    // server was lost): read on directly from any replica until the stream
    // has no next message, without a stream-state request (those wait for a
    // leader).
    let failed = nats_error("catching up with the JetStream log");
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    let stream = store
        .context
        .get_stream_no_info(&store.stream)
        .await
        .map_err(|e| failed(e.to_string()))?;
    loop {
        let next = lock(&store.applied).message + 1;
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(format!(
                "message {next} not readable within {OPEN_TIMEOUT:?}"
            )));
        }
        match tokio::time::timeout(SETUP_TIMEOUT, stream.direct_get(next)).await {
            Ok(Ok(message)) => {
                let records = decode_batch(&message.payload)
                    .map_err(|e| failed(format!("message {next}: {e}")))?;
                store.apply(next, records)?;
            }
            Ok(Err(e)) if e.kind() == DirectGetErrorKind::NotFound && next > target => {
                return Ok(());
            }
            other => {
                tracing::debug!(
                    next,
                    "reading a JetStream message directly, retrying: {other:?}"
                );
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
