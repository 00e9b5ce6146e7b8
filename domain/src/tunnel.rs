//! The tunnel aggregate: online, offline (name or port kept), released; its
//! traffic and captured requests. Opening is decided by the `Directory`.
//!
//! The tunnel records its traffic but keeps no byte totals: none of its
//! decisions needs them. The usage projection owns every byte total (per
//! tunnel, key and tenant), and the byte limits are decided from it.

use beamd_events::vocabulary::{
    InspectMode, RequestCaptured, RequestsCaptured, TrafficRecorded, TransportKind,
    TunnelInspectSet, TunnelProtocol, TunnelReleased, TunnelResumed, TunnelWentOffline,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::{Aggregate, Ctx, DomainError};

/// The most requests one `RequestsCaptured` holds: about 5 KiB of rows, so
/// that an event stays within one block of the log.
pub const CAPTURES_PER_EVENT: usize = 32;

/// Where a tunnel is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TunnelStatus {
    /// Never opened.
    #[default]
    Missing,
    /// An agent serves it.
    Online,
    /// Its agent went away; the name or port is still reserved.
    Offline,
    /// Released: the name or port is free.
    Released,
}

/// A tunnel's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tunnel {
    /// `tun_…` (its stream id).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The key that opened it.
    pub key: String,
    /// HTTP or TCP.
    pub protocol: Option<TunnelProtocol>,
    /// HTTP name.
    pub name: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// Current transport.
    pub transport: Option<TransportKind>,
    /// Current edge node.
    pub node: String,
    /// Agent-side address.
    pub local_addr: String,
    /// Lifecycle.
    pub status: TunnelStatus,
    /// When opened.
    pub opened_at: Option<u64>,
    /// Last event of any kind.
    pub last_seen: Option<u64>,
    /// How much of its HTTP requests the inspector keeps.
    #[serde(default)]
    pub inspect: InspectMode,
}

/// Commands to an opened tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelCommand {
    /// The agent's session ended.
    GoOffline {
        /// Why.
        reason: String,
        /// The node whose session ended: when the tunnel is served by another
        /// node by now (the agent failed over), nothing changes. `None`: whatever node.
        node: Option<String>,
    },
    /// An agent with the same key took the tunnel (again).
    Resume {
        /// Serving node.
        node: String,
        /// Transport.
        transport: TransportKind,
        /// The key the agent presented.
        key: String,
    },
    /// Free the name or port.
    Release,
    /// One window of the data plane's meter, recorded as it is (nothing for
    /// an empty one).
    RecordTraffic(TrafficRecorded),
    /// Proxied HTTP requests' metadata, appended together as
    /// `RequestsCaptured` events of up to [`CAPTURES_PER_EVENT`] requests
    /// each (shared: a command is cloned for each delivery attempt, and
    /// batches hold thousands).
    CaptureRequests(std::sync::Arc<[RequestCaptured]>),
    /// Change how much of its requests the inspector keeps.
    SetInspect(InspectMode),
}

impl Fold for Tunnel {
    const KIND: &'static str = "tunnel";

    fn apply(&mut self, envelope: &Envelope) {
        self.last_seen = Some(envelope.at);
        match &envelope.event {
            Event::TunnelOpened(e) => {
                *self = Tunnel {
                    id: envelope.stream.to_string(),
                    tenant: e.tenant.clone(),
                    key: e.key.clone(),
                    protocol: Some(e.protocol),
                    name: e.name.clone(),
                    port: e.port,
                    transport: Some(e.transport),
                    node: e.node.clone(),
                    local_addr: e.local_addr.clone(),
                    status: TunnelStatus::Online,
                    opened_at: Some(envelope.at),
                    last_seen: Some(envelope.at),
                    ..Tunnel::default()
                }
            }
            Event::TunnelWentOffline(_) => self.status = TunnelStatus::Offline,
            Event::TunnelResumed(e) => {
                self.status = TunnelStatus::Online;
                self.node = e.node.clone();
                self.transport = Some(e.transport);
            }
            Event::TunnelReleased(_) => self.status = TunnelStatus::Released,
            Event::TunnelInspectSet(e) => self.inspect = e.mode,
            _ => {}
        }
    }
}

impl Aggregate for Tunnel {
    type Command = TunnelCommand;
    const PREFIX: &'static str = "tun";

    fn decide(&self, command: &TunnelCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if self.status == TunnelStatus::Missing {
            return Err(DomainError::NotFound("tunnel".into()));
        }
        let released = self.status == TunnelStatus::Released;
        match command {
            TunnelCommand::GoOffline { node: Some(n), .. } if *n != self.node => Ok(vec![]),
            TunnelCommand::GoOffline { reason, .. } => match self.status {
                TunnelStatus::Online => Ok(vec![TunnelWentOffline {
                    reason: reason.clone(),
                }
                .into()]),
                _ => Ok(vec![]),
            },
            TunnelCommand::Resume {
                node,
                transport,
                key,
            } => {
                if released {
                    return Err(DomainError::NotFound("tunnel".into()));
                }
                if *key != self.key {
                    return Err(DomainError::Conflict(
                        "the tunnel's name or port is held by another key".into(),
                    ));
                }
                Ok(vec![TunnelResumed {
                    node: node.clone(),
                    transport: *transport,
                }
                .into()])
            }
            TunnelCommand::Release if released => Err(DomainError::NotFound("tunnel".into())),
            TunnelCommand::Release => Ok(vec![TunnelReleased {}.into()]),
            // Traffic that happened is recorded whatever the state, so that
            // usage never drifts from the bytes that crossed the edge.
            TunnelCommand::RecordTraffic(t) => {
                let empty =
                    t.bytes_in == 0 && t.bytes_out == 0 && t.connections == 0 && t.requests == 0;
                Ok(if empty {
                    vec![]
                } else {
                    vec![t.clone().into()]
                })
            }
            TunnelCommand::CaptureRequests(rs) => Ok(rs
                .chunks(CAPTURES_PER_EVENT)
                .map(|chunk| {
                    RequestsCaptured {
                        requests: chunk.to_vec(),
                    }
                    .into()
                })
                .collect()),
            TunnelCommand::SetInspect(_) if released => Err(DomainError::NotFound("tunnel".into())),
            TunnelCommand::SetInspect(mode) if *mode == self.inspect => Ok(vec![]),
            TunnelCommand::SetInspect(mode) => Ok(vec![TunnelInspectSet { mode: *mode }.into()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{envelope, given, round_trip};
    use beamd_events::vocabulary::TunnelOpened;

    fn opened() -> Tunnel {
        given(
            "tun_1",
            10,
            vec![TunnelOpened {
                tenant: "ten_1".into(),
                key: "tok_1".into(),
                protocol: TunnelProtocol::Tcp,
                name: None,
                port: Some(20_001),
                transport: TransportKind::Quic,
                node: "node_a".into(),
                local_addr: "127.0.0.1:5432".into(),
            }
            .into()],
        )
    }

    fn run(t: &mut Tunnel, cmd: TunnelCommand) -> Result<Vec<Event>, DomainError> {
        let events = t.decide(&cmd, &Ctx::new(0, 0))?;
        let version = 10;
        for e in &events {
            t.apply(&envelope("tun_1", version, 50, e.clone()));
        }
        Ok(events)
    }

    #[test]
    fn a_node_that_lost_the_tunnel_cannot_take_it_offline() {
        let mut t = opened();
        let resume = TunnelCommand::Resume {
            node: "node_b".into(),
            transport: TransportKind::Ws,
            key: "tok_1".into(),
        };
        run(&mut t, resume).unwrap();
        let from = |node: &str| TunnelCommand::GoOffline {
            reason: "agent disconnected".into(),
            node: Some(node.into()),
        };
        assert!(run(&mut t, from("node_a")).unwrap().is_empty());
        assert_eq!(t.status, TunnelStatus::Online);
        assert_eq!(run(&mut t, from("node_b")).unwrap().len(), 1);
        assert_eq!(t.status, TunnelStatus::Offline);
    }

    #[test]
    fn offline_resume_release() {
        let mut t = opened();
        assert_eq!(t.status, TunnelStatus::Online);
        run(
            &mut t,
            TunnelCommand::GoOffline {
                reason: "agent closed".into(),
                node: None,
            },
        )
        .unwrap();
        assert_eq!(t.status, TunnelStatus::Offline);
        assert!(run(
            &mut t,
            TunnelCommand::GoOffline {
                reason: "again".into(),
                node: None,
            }
        )
        .unwrap()
        .is_empty());
        let resume = TunnelCommand::Resume {
            node: "node_b".into(),
            transport: TransportKind::Ws,
            key: "tok_1".into(),
        };
        run(&mut t, resume.clone()).unwrap();
        assert_eq!(
            (t.status, t.node.as_str()),
            (TunnelStatus::Online, "node_b")
        );
        run(&mut t, TunnelCommand::Release).unwrap();
        assert_eq!(t.status, TunnelStatus::Released);
        assert_eq!(
            run(&mut t, TunnelCommand::Release).unwrap_err().code(),
            "not_found"
        );
        assert_eq!(run(&mut t, resume).unwrap_err().code(), "not_found");
        round_trip(&t);
    }

    #[test]
    fn another_key_cannot_take_a_tunnel_over() {
        let mut t = opened();
        let err = run(
            &mut t,
            TunnelCommand::Resume {
                node: "n".into(),
                transport: TransportKind::Tcp,
                key: "tok_other".into(),
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), "conflict");
    }

    #[test]
    fn each_window_is_one_event_and_empty_windows_record_nothing() {
        let mut t = opened();
        let window = TrafficRecorded {
            bytes_in: 5,
            bytes_out: 7,
            connections: 1,
            requests: 0,
            window_ms: 1_000,
        };
        let recorded = run(&mut t, TunnelCommand::RecordTraffic(window.clone())).unwrap();
        assert_eq!(recorded, vec![Event::from(window.clone())]);
        run(&mut t, TunnelCommand::Release).unwrap();
        // Bytes counted after release (the last window) are still recorded.
        let late = run(&mut t, TunnelCommand::RecordTraffic(window.clone())).unwrap();
        assert_eq!(late, vec![Event::from(window)]);
        let none = run(
            &mut t,
            TunnelCommand::RecordTraffic(TrafficRecorded::default()),
        )
        .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn a_window_of_captures_is_a_few_events_in_order() {
        let mut t = opened();
        let captures: Vec<RequestCaptured> = (0..(CAPTURES_PER_EVENT * 2 + 5))
            .map(|i| RequestCaptured {
                id: format!("req_{i:016x}"),
                ..RequestCaptured::default()
            })
            .collect();
        let events = run(
            &mut t,
            TunnelCommand::CaptureRequests(captures.clone().into()),
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        let back: Vec<RequestCaptured> = events
            .into_iter()
            .flat_map(|e| match e {
                Event::RequestsCaptured(w) => w.requests,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back, captures);
    }

    #[test]
    fn a_snapshot_stored_with_byte_totals_still_loads() {
        // Tunnels kept byte totals until the usage projection became their
        // one owner; snapshots taken then carry the fields, which are ignored.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct WithTotals {
            #[serde(flatten)]
            tunnel: Tunnel,
            bytes_in: u64,
            bytes_out: u64,
            connections: u64,
            requests: u64,
        }
        let t = opened();
        let stored = WithTotals {
            tunnel: t.clone(),
            bytes_in: 5,
            bytes_out: 7,
            connections: 1,
            requests: 2,
        };
        let snap = beamd_snapshots::Snapshot::new(Tunnel::KIND, "tun_1", 1, 1, &stored).unwrap();
        assert_eq!(snap.decode::<Tunnel>().unwrap(), t);
    }

    #[test]
    fn inspect_mode_starts_meta_and_changes_only_when_different() {
        let mut t = opened();
        assert_eq!(t.inspect, InspectMode::Meta);
        assert!(run(&mut t, TunnelCommand::SetInspect(InspectMode::Meta))
            .unwrap()
            .is_empty());
        assert_eq!(
            run(&mut t, TunnelCommand::SetInspect(InspectMode::Full))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(t.inspect, InspectMode::Full);
        run(&mut t, TunnelCommand::Release).unwrap();
        let err = run(&mut t, TunnelCommand::SetInspect(InspectMode::Off)).unwrap_err();
        assert_eq!(err.code(), "not_found");
        round_trip(&t);
    }

    #[test]
    fn a_missing_tunnel_is_not_found() {
        let err = Tunnel::default()
            .decide(&TunnelCommand::Release, &Ctx::new(0, 0))
            .unwrap_err();
        assert_eq!(err.code(), "not_found");
    }
}
