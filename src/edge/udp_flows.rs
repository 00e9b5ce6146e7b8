//! UDP flows whose datagrams travel as QUIC datagrams: per agent
//! connection, each flow's id and where the agent's answers go; and when a
//! flow last carried a datagram.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beamd_transports::Connection;
use tokio::net::UdpSocket;

use super::meter::Meter;

/// When a flow last carried a datagram either way.
pub(super) struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Where the answers of a flow carried as QUIC datagrams go.
pub(super) struct FlowEnd {
    pub(super) socket: Arc<UdpSocket>,
    pub(super) peer: SocketAddr,
    pub(super) meter: Arc<Meter>,
    pub(super) activity: Arc<Activity>,
}

/// The flows of one agent connection whose datagrams travel as QUIC
/// datagrams, by id.
#[derive(Default)]
pub struct DatagramFlows {
    flows: Mutex<HashMap<u32, Arc<FlowEnd>>>,
}

/// Flow ids, unique on this edge.
pub(super) static NEXT_FLOW: AtomicU32 = AtomicU32::new(1);

impl DatagramFlows {
    fn get(&self, id: u32) -> Option<Arc<FlowEnd>> {
        let flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        flows.get(&id).cloned()
    }

    pub(super) fn set(&self, id: u32, end: Option<Arc<FlowEnd>>) {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        match end {
            Some(end) => flows.insert(id, end),
            None => flows.remove(&id),
        };
    }

    /// Sends each datagram the agent sends back to its flow's client, until
    /// the connection ends.
    pub async fn dispatch<C: Connection>(self: Arc<Self>, conn: Arc<C>) {
        while let Ok(datagram) = conn.read_datagram().await {
            let Some((id, payload)) = datagram.split_first_chunk::<4>() else {
                continue;
            };
            let Some(end) = self.get(u32::from_be_bytes(*id)) else {
                continue; // the flow ended meanwhile
            };
            end.activity.touch();
            if end.socket.send_to(payload, end.peer).await.is_ok() {
                let meter = &end.meter;
                meter
                    .bytes_out
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                meter.datagrams.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
