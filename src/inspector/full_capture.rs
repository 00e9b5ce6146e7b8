//! Full capture on an edge: the body store opened as `beamd edge`'s flags
//! say, its writer and its expiry started, and the queued details written
//! on a clean stop. What each request keeps is decided by the edge.

use std::sync::Arc;

use super::{BodySink, BodyStore, InspectSettings, BODIES_DIR, BODIES_TREE};
use crate::data_dir::DataDir;
use crate::live::Live;

/// How full capture works on this edge.
#[derive(Debug, Clone)]
pub struct FullCaptureSettings {
    /// Where headers and body prefixes are read from.
    pub store: Arc<BodyStore>,
    /// Where they are handed over to be written.
    pub sink: BodySink,
    /// Body bytes kept per body.
    pub body_limit: usize,
    /// Header names whose values are masked (lower case); shared, since
    /// every captured request holds the settings, and changed by a reload.
    pub masked: Live<Arc<[String]>>,
}

impl FullCaptureSettings {
    /// Full capture as `beamd edge`'s flags set it up: the body store
    /// opened, its writer and its expiry started.
    pub fn open(args: &InspectSettings, dir: &DataDir) -> anyhow::Result<Option<Self>> {
        // An earlier version kept details in the log's database: they go.
        if let Err(e) = dir.db().drop_tree(BODIES_TREE) {
            tracing::warn!("cannot drop the old body store tree: {e}");
        }
        let path = dir.path().join(BODIES_DIR);
        let store = Arc::new(BodyStore::open_dir(&path, args.limits())?);
        tokio::spawn(expire(store.clone(), args.body_ttl));
        Ok(Some(Self {
            sink: BodySink::spawn(store.clone())?,
            store,
            body_limit: args.body_limit,
            masked: Live::new(args.masked().into()),
        }))
    }
}

impl FullCaptureSettings {
    /// On a clean stop: the details still queued are written and flushed.
    pub async fn finish(&self) {
        let sink = self.sink.clone();
        let within = std::time::Duration::from_secs(10);
        match tokio::task::spawn_blocking(move || sink.finish(within)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("body store on stop: {e:#}"),
            Err(e) => tracing::warn!("body store on stop: {e}"),
        }
    }
}

/// Drops expired details while no new ones arrive to prune them (every
/// quarter of the time to live, at most every minute).
async fn expire(store: Arc<BodyStore>, ttl: std::time::Duration) {
    let every = (ttl / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::time::sleep(every).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.expire(now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("expiring request details: {e:#}"),
            Err(_) => return,
        }
    }
}
