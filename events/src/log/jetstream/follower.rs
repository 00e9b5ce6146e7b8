//! The follower: applies every message of the stream, in order, to a
//! store's local copy, including the store's own (applied once).

use futures_util::StreamExt;

use super::batch::decode_batch;
use super::{lock, JetStreamStore};

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
