//! The tunnel aggregate: online, offline (name or port kept), released; its
//! traffic and captured requests; a pool's members. Opening is decided by
//! the `Directory`.
//!
//! A tunnel is served by one agent, which a reconnect with the same key
//! takes over; or, opened as a pool, by every agent of its tenant that
//! joins it, on any edge of the cluster. A pool is online while it has a
//! member.
//!
//! The tunnel records its traffic but keeps no byte totals: none of its
//! decisions needs them. The usage projection owns every byte total (per
//! tunnel, key and tenant), and the byte limits are decided from it.

use std::collections::BTreeMap;

use beamd_events::vocabulary::{
    InspectMode, RequestCaptured, RequestsCaptured, TrafficRecorded, TransportKind,
    TunnelInspectSet, TunnelMemberJoined, TunnelMemberLeft, TunnelProtocol, TunnelReleased,
    TunnelResumed, TunnelWentOffline,
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
    /// Whether agents join it rather than take it over.
    #[serde(default)]
    pub pool: bool,
    /// A pool's members now: member id → member.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, Member>,
}

/// An agent connection serving a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The edge node it is connected to.
    pub node: String,
    /// Its transport.
    pub transport: Option<TransportKind>,
    /// The key it presented.
    pub key: String,
    /// The agent's address as the edge saw it.
    pub peer: String,
    /// When it joined (ms).
    pub joined_at: u64,
    /// The access rules it serves with (`Access::digest`; empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules: String,
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
    /// An agent connection joins the pool (the tunnel must be one, of the
    /// key's tenant).
    Join {
        /// The member's id.
        member: String,
        /// Its node.
        node: String,
        /// Its transport.
        transport: TransportKind,
        /// The key it presented.
        key: String,
        /// The key's tenant.
        tenant: String,
        /// The agent's address.
        peer: String,
        /// The access rules it serves with (`Access::digest`).
        rules: String,
    },
    /// A member leaves the pool; the last one takes the tunnel offline.
    Leave {
        /// The member's id.
        member: String,
        /// Why.
        reason: String,
    },
}

impl Tunnel {
    /// How the tunnel is named to people: its host name label or port.
    fn named(&self) -> String {
        match (&self.name, self.port) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => format!("port {p}"),
            _ => self.id.clone(),
        }
    }

    /// A pool's members leaving (those `which` picks; `everyone`: all of
    /// them, whoever they are): the events, with the tunnel going offline
    /// when none is left.
    fn members_leave(
        &self,
        which: impl Fn(&str, &Member) -> bool,
        everyone: bool,
        reason: &str,
    ) -> Vec<Event> {
        let leaving: Vec<&String> = (self.members.iter())
            .filter(|(id, m)| which(id, m))
            .map(|(id, _)| id)
            .collect();
        let mut events: Vec<Event> = leaving
            .iter()
            .map(|member| {
                TunnelMemberLeft {
                    member: (*member).clone(),
                    reason: reason.to_string(),
                }
                .into()
            })
            .collect();
        let last = leaving.len() == self.members.len();
        if last && self.status == TunnelStatus::Online && (everyone || !leaving.is_empty()) {
            events.push(
                TunnelWentOffline {
                    reason: reason.to_string(),
                }
                .into(),
            );
        }
        events
    }
}

impl Fold for Tunnel {
    const KIND: &'static str = "tunnel";

    fn apply(&mut self, envelope: &Envelope) {
        self.last_seen = Some(envelope.at);
        match &envelope.event {
            Event::TunnelOpened(e) => {
                *self = Tunnel {
                    pool: e.pool,
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
            Event::TunnelMemberJoined(e) => {
                self.status = TunnelStatus::Online;
                self.node = e.node.clone();
                self.transport = Some(e.transport);
                let member = Member {
                    node: e.node.clone(),
                    transport: Some(e.transport),
                    key: e.key.clone(),
                    peer: e.peer.clone(),
                    joined_at: envelope.at,
                    rules: e.rules.clone(),
                };
                self.members.insert(e.member.clone(), member);
            }
            Event::TunnelMemberLeft(e) => {
                self.members.remove(&e.member);
            }
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
            // A pool goes offline member by member: those on the node that went away.
            TunnelCommand::GoOffline { reason, node } if self.pool => {
                let on = |_: &str, m: &Member| node.as_deref().is_none_or(|n| m.node == n);
                Ok(self.members_leave(on, node.is_none(), reason))
            }
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
                if self.pool {
                    return Err(DomainError::Conflict(format!(
                        "{} is a pool: an agent joins it with --pool",
                        self.named()
                    )));
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
                let empty = t.bytes_in == 0
                    && t.bytes_out == 0
                    && t.connections == 0
                    && t.requests == 0
                    && t.datagrams == 0;
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
            TunnelCommand::Join { .. } if released => Err(DomainError::NotFound("tunnel".into())),
            TunnelCommand::Join { tenant, .. } if *tenant != self.tenant => Err(
                DomainError::Conflict(format!("{} is held by another tenant", self.named())),
            ),
            TunnelCommand::Join { .. } if !self.pool => Err(DomainError::Conflict(format!(
                "{} is served by one agent, not a pool: it becomes a pool when it is released \
                 (beamd tunnels release {}) and opened again with --pool",
                self.named(),
                self.id
            ))),
            TunnelCommand::Join { member, .. } if self.members.contains_key(member) => Ok(vec![]),
            // One pool, one set of rules: a member letting in whom the others
            // turn away would open the name to them for its share of requests.
            TunnelCommand::Join { rules, .. }
                if self.members.values().any(|m| m.rules != *rules) =>
            {
                Err(DomainError::Conflict(format!(
                    "{} is served with other access rules: every member of a pool asks for the \
                     same --allow, --basic-auth and sign-in (--oidc-*)",
                    self.named()
                )))
            }
            TunnelCommand::Join {
                member,
                node,
                transport,
                key,
                peer,
                rules,
                ..
            } => Ok(vec![TunnelMemberJoined {
                member: member.clone(),
                node: node.clone(),
                transport: *transport,
                key: key.clone(),
                peer: peer.clone(),
                rules: rules.clone(),
            }
            .into()]),
            TunnelCommand::Leave { member, reason } => {
                let this = |id: &str, _: &Member| id == member;
                Ok(self.members_leave(this, false, reason))
            }
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
                pool: false,
            }
            .into()],
        )
    }

    /// A pool on port 20001 with member `ses_a` on node_a.
    fn pool() -> Tunnel {
        given(
            "tun_1",
            10,
            vec![
                TunnelOpened {
                    tenant: "ten_1".into(),
                    key: "tok_1".into(),
                    protocol: TunnelProtocol::Tcp,
                    name: None,
                    port: Some(20_001),
                    transport: TransportKind::Quic,
                    node: "node_a".into(),
                    local_addr: "127.0.0.1:5432".into(),
                    pool: true,
                }
                .into(),
                TunnelMemberJoined {
                    member: "ses_a".into(),
                    node: "node_a".into(),
                    transport: TransportKind::Quic,
                    key: "tok_1".into(),
                    peer: "192.0.2.1:1".into(),
                    rules: String::new(),
                }
                .into(),
            ],
        )
    }

    fn join(member: &str, node: &str, key: &str, tenant: &str) -> TunnelCommand {
        join_with(member, node, key, tenant, "")
    }

    fn join_with(member: &str, node: &str, key: &str, tenant: &str, rules: &str) -> TunnelCommand {
        TunnelCommand::Join {
            member: member.into(),
            node: node.into(),
            transport: TransportKind::Tcp,
            key: key.into(),
            tenant: tenant.into(),
            peer: "192.0.2.2:2".into(),
            rules: rules.into(),
        }
    }

    #[test]
    fn a_pool_is_joined_only_with_its_members_access_rules() {
        let mut t = pool();
        let signed = "d1ce".to_string();
        // The open member asked for none: a member with sign-in is refused,
        // and so is the other way round once the pool is theirs.
        let err = run(
            &mut t,
            join_with("ses_b", "node_a", "tok_2", "ten_1", &signed),
        )
        .unwrap_err();
        assert!(err.to_string().contains("other access rules"), "{err}");
        assert!(matches!(err, DomainError::Conflict(_)));
        run(&mut t, join("ses_c", "node_b", "tok_2", "ten_1")).unwrap();
        // Once every member has left, the next one brings its own rules, and
        // from then on those are the pool's.
        run(&mut t, leave("ses_a")).unwrap();
        run(&mut t, leave("ses_c")).unwrap();
        assert_eq!(t.status, TunnelStatus::Offline);
        run(
            &mut t,
            join_with("ses_d", "node_a", "tok_1", "ten_1", &signed),
        )
        .unwrap();
        assert_eq!(t.members["ses_d"].rules, signed);
        assert!(run(&mut t, join("ses_e", "node_a", "tok_1", "ten_1")).is_err());
        run(
            &mut t,
            join_with("ses_e", "node_b", "tok_2", "ten_1", &signed),
        )
        .unwrap();
        assert_eq!(t.members.len(), 2);
    }

    fn leave(member: &str) -> TunnelCommand {
        TunnelCommand::Leave {
            member: member.into(),
            reason: "agent disconnected".into(),
        }
    }

    #[test]
    fn a_pool_is_joined_by_its_tenants_keys_and_offline_when_its_last_member_leaves() {
        let mut t = pool();
        assert_eq!(t.members.len(), 1);
        // Another key of the same tenant joins; joining twice changes nothing.
        assert_eq!(
            run(&mut t, join("ses_b", "node_b", "tok_2", "ten_1"))
                .unwrap()
                .len(),
            1
        );
        assert!(run(&mut t, join("ses_b", "node_b", "tok_2", "ten_1"))
            .unwrap()
            .is_empty());
        assert_eq!(t.members["ses_b"].key, "tok_2");
        // Another tenant's key does not.
        let err = run(&mut t, join("ses_c", "node_a", "tok_9", "ten_9")).unwrap_err();
        assert_eq!(err.code(), "conflict");
        // One member leaving keeps the pool online; the last takes it offline.
        assert_eq!(run(&mut t, leave("ses_a")).unwrap().len(), 1);
        assert_eq!(t.status, TunnelStatus::Online);
        assert!(
            run(&mut t, leave("ses_a")).unwrap().is_empty(),
            "left already"
        );
        let last = run(&mut t, leave("ses_b")).unwrap();
        let kinds: Vec<&str> = last.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["TunnelMemberLeft", "TunnelWentOffline"]);
        assert_eq!(t.status, TunnelStatus::Offline);
        // A member joining an offline pool brings it back.
        run(&mut t, join("ses_d", "node_b", "tok_1", "ten_1")).unwrap();
        assert_eq!(
            (t.status, t.node.as_str()),
            (TunnelStatus::Online, "node_b")
        );
        round_trip(&t);
    }

    #[test]
    fn a_node_going_away_takes_only_its_members_out_of_a_pool() {
        let mut t = pool();
        run(&mut t, join("ses_b", "node_b", "tok_1", "ten_1")).unwrap();
        let gone = |node: &str| TunnelCommand::GoOffline {
            reason: "node silent".into(),
            node: Some(node.into()),
        };
        assert!(run(&mut t, gone("node_c")).unwrap().is_empty());
        assert_eq!(run(&mut t, gone("node_a")).unwrap().len(), 1);
        assert_eq!(
            (t.status, t.members.keys().collect::<Vec<_>>()),
            (TunnelStatus::Online, vec![&"ses_b".to_string()])
        );
        assert_eq!(run(&mut t, gone("node_b")).unwrap().len(), 2);
        assert_eq!(t.status, TunnelStatus::Offline);
    }

    #[test]
    fn a_pool_and_a_single_agents_tunnel_are_not_mistaken_for_each_other() {
        let mut p = pool();
        let resume = TunnelCommand::Resume {
            node: "node_b".into(),
            transport: TransportKind::Ws,
            key: "tok_1".into(),
        };
        let err = run(&mut p, resume).unwrap_err();
        assert!(err.to_string().contains("--pool"), "{err}");
        let mut single = opened();
        let err = run(&mut single, join("ses_b", "node_b", "tok_1", "ten_1")).unwrap_err();
        assert!(err.to_string().contains("not a pool"), "{err}");
        run(&mut single, TunnelCommand::Release).unwrap();
        let err = run(&mut single, join("ses_b", "node_b", "tok_1", "ten_1")).unwrap_err();
        assert_eq!(err.code(), "not_found");
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
            ..TrafficRecorded::default()
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
