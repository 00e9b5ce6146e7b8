//! The JetStream backend of the log contract tests, on a real nats-server
//! (the server comes from `beamd-testkit`).

use std::sync::Arc;

use beamd_events::log::{JetStreamConfig, JetStreamStore};
use beamd_testkit::nats::NatsServer;

use super::Backend;

/// The JetStream backend: a store reopened over the same stream reads it back.
pub struct Nats {
    pub server: NatsServer,
    pub store: Option<Arc<JetStreamStore>>,
}

pub fn nats_backend() -> Nats {
    Nats {
        server: NatsServer::start(),
        store: None,
    }
}

impl Backend for Nats {
    type S = JetStreamStore;
    fn store(&mut self) -> Arc<JetStreamStore> {
        let config = JetStreamConfig::parse(&format!("nats://{}", self.server.addr)).unwrap();
        let store = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(JetStreamStore::open(&config))
        })
        .unwrap();
        self.store = Some(store.clone());
        store
    }
    fn forget(&mut self) {
        self.store = None;
    }
}
