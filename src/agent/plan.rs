//! What an agent wants served and what it remembers between connections:
//! the public port each TCP tunnel was given (asked back on reconnect), and
//! the tunnels refused for good (not asked again until their settings change,
//! e.g. by a reload). Tunnels are told apart by their tag (the config file's
//! table name; a lone tunnel of `beamd tcp` or `beamd http` has none).

use std::collections::HashMap;

use beamd_events::vocabulary::TunnelProtocol;

use crate::protocol::{AgentFrame, AssignedTunnel, RefusedTunnel, TunnelRequest};

/// Refusals for good: the connection (or, in a welcome or `TunnelRefused`,
/// the tunnel) is not asked for again as it was.
pub(super) const FATAL: &[&str] = &[
    "unauthorized",
    "unsupported_version",
    "invalid_request",
    "limit_exceeded",
    "conflict",
    "taken_over",
];

/// A tunnel's tag, or "" for a lone untagged one.
pub(super) fn tag_of(tag: &Option<String>) -> &str {
    tag.as_deref().unwrap_or("")
}

/// The agent's wishes and memory, across connections.
pub(super) struct Plan {
    /// The tunnels as configured, tags unique.
    wanted: Vec<TunnelRequest>,
    /// The public port a TCP tunnel without a pinned port was last given.
    ports: HashMap<String, u16>,
    /// Tunnels the edge refused for good, as configured when refused.
    refused: HashMap<String, TunnelRequest>,
}

/// What one connection serves and has asked for.
#[derive(Default)]
pub(super) struct Connected {
    /// Tag → (tunnel id, the request as configured).
    pub serving: HashMap<String, (String, TunnelRequest)>,
    /// Tag → the request as configured, asked for with `Open`, not yet answered.
    pub pending: HashMap<String, TunnelRequest>,
}

impl Plan {
    pub(super) fn new(wanted: Vec<TunnelRequest>) -> Self {
        Plan {
            wanted,
            ports: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    /// The tunnel configured under `tag`.
    pub(super) fn wanted(&self, tag: &str) -> Option<&TunnelRequest> {
        self.wanted.iter().find(|w| tag_of(&w.tag) == tag)
    }

    /// What a hello asks for: every wanted tunnel not refused for good, a TCP
    /// one with the port it had.
    pub(super) fn asks(&self) -> Vec<TunnelRequest> {
        self.wanted
            .iter()
            .filter(|w| !self.refused.contains_key(tag_of(&w.tag)))
            .map(|w| self.ask(w))
            .collect()
    }

    fn ask(&self, wanted: &TunnelRequest) -> TunnelRequest {
        let mut ask = wanted.clone();
        let ported = matches!(ask.protocol, TunnelProtocol::Tcp | TunnelProtocol::Udp);
        if ported && ask.port.is_none() {
            ask.port = self.ports.get(tag_of(&ask.tag)).copied();
        }
        ask
    }

    /// Remembers a TCP tunnel's port, to ask for it back on reconnect.
    pub(super) fn assigned(&mut self, tunnel: &AssignedTunnel) {
        let tag = tag_of(&tunnel.tag);
        let unpinned = self.wanted(tag).is_some_and(|w| w.port.is_none());
        if let (Some(port), true) = (tunnel.port, unpinned) {
            self.ports.insert(tag.to_string(), port);
        }
    }

    /// Takes in a refusal. Returns the request to ask for again at once: a
    /// port it had is taken (any free one will do). A refusal for good is
    /// remembered; any other is asked again on the next connection.
    pub(super) fn refused(&mut self, refusal: &RefusedTunnel) -> Option<TunnelRequest> {
        let tag = tag_of(&refusal.tag).to_string();
        let wanted = self.wanted(&tag)?.clone();
        if refusal.error.code == "port_unavailable" && self.ports.remove(&tag).is_some() {
            return Some(self.ask(&wanted));
        }
        if FATAL.contains(&refusal.error.code.as_str()) {
            self.refused.insert(tag, wanted);
        }
        None
    }

    /// The whole connection was refused because a port it had is taken:
    /// forget the ports that were not pinned; any free ones will do.
    pub(super) fn forget_ports(&mut self) {
        self.ports.clear();
    }

    /// Whether every wanted tunnel was refused for good (or none is wanted).
    pub(super) fn nothing_to_ask(&self) -> bool {
        self.asks().is_empty()
    }

    /// Takes a new set of wanted tunnels (a reload) and returns the frames
    /// that bring the connection's tunnels in line: `Close` for each tunnel
    /// removed or changed, then `Open` for each new or changed one. A tunnel
    /// refused for good is asked again once its settings change.
    pub(super) fn replace(
        &mut self,
        wanted: Vec<TunnelRequest>,
        live: &mut Connected,
    ) -> Vec<AgentFrame> {
        self.wanted = wanted;
        let mut frames = Vec::new();
        let stale: Vec<String> = live
            .serving
            .iter()
            .filter(|(tag, (_, was))| self.wanted(tag) != Some(was))
            .map(|(tag, _)| tag.clone())
            .collect();
        for tag in stale {
            if let Some((id, _)) = live.serving.remove(&tag) {
                frames.push(AgentFrame::Close { tunnel: id });
            }
        }
        let wanted = &self.wanted;
        let same = |tag: &str, was: &TunnelRequest| {
            wanted.iter().any(|w| tag_of(&w.tag) == tag && w == was)
        };
        self.refused.retain(|tag, was| same(tag, was));
        self.ports
            .retain(|tag, _| wanted.iter().any(|w| tag_of(&w.tag) == tag));
        for w in &self.wanted {
            let tag = tag_of(&w.tag);
            let busy = live.serving.contains_key(tag) || live.pending.contains_key(tag);
            if !busy && !self.refused.contains_key(tag) {
                live.pending.insert(tag.to_string(), w.clone());
                frames.push(AgentFrame::Open(self.ask(w)));
            }
        }
        frames
    }

    /// Whether `was` (answered now) is still what is configured under its tag.
    pub(super) fn still_wanted(&self, was: &TunnelRequest) -> bool {
        self.wanted(tag_of(&was.tag)) == Some(was)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorFrame;

    fn tcp(tag: &str, port: Option<u16>) -> TunnelRequest {
        TunnelRequest {
            protocol: TunnelProtocol::Tcp,
            local_addr: "127.0.0.1:1".into(),
            port,
            name: None,
            domain: None,
            basic_auth: None,
            allow: Vec::new(),
            inspect: None,
            upstream: Default::default(),
            tag: Some(tag.into()),
            proxy_protocol: None,
            pool: false,
            sign_in: None,
        }
    }

    fn assigned(tag: &str, id: &str, port: u16) -> AssignedTunnel {
        AssignedTunnel {
            id: id.into(),
            protocol: TunnelProtocol::Tcp,
            public: format!("tcp://h:{port}"),
            port: Some(port),
            local_addr: "127.0.0.1:1".into(),
            aliases: Vec::new(),
            notice: None,
            tag: Some(tag.into()),
        }
    }

    fn refusal(tag: &str, code: &str) -> RefusedTunnel {
        RefusedTunnel {
            tag: Some(tag.into()),
            asked: tag.into(),
            error: ErrorFrame {
                code: code.into(),
                message: "no".into(),
            },
        }
    }

    #[test]
    fn a_port_given_is_asked_back_and_a_taken_one_let_go() {
        let mut plan = Plan::new(vec![tcp("a", None), tcp("b", Some(7000))]);
        plan.assigned(&assigned("a", "t1", 6000));
        plan.assigned(&assigned("b", "t2", 7000));
        let asks = plan.asks();
        assert_eq!(asks[0].port, Some(6000));
        assert_eq!(asks[1].port, Some(7000));
        let again = plan.refused(&refusal("a", "port_unavailable"));
        assert_eq!(again.map(|r| r.port), Some(None));
        // A pinned port taken is not let go of: asked again next time.
        assert_eq!(plan.refused(&refusal("b", "port_unavailable")), None);
        assert_eq!(plan.asks().len(), 2);
    }

    #[test]
    fn refused_for_good_until_changed() {
        let mut plan = Plan::new(vec![tcp("a", None), tcp("b", None)]);
        assert_eq!(plan.refused(&refusal("b", "conflict")), None);
        assert_eq!(plan.asks().len(), 1);
        let mut live = Connected::default();
        live.serving
            .insert("a".into(), ("t1".into(), tcp("a", None)));
        // The same file again: nothing to do.
        assert!(plan
            .replace(vec![tcp("a", None), tcp("b", None)], &mut live)
            .is_empty());
        // b changed: asked again; a removed: closed.
        let frames = plan.replace(vec![tcp("b", Some(9000))], &mut live);
        assert_eq!(
            frames,
            vec![
                AgentFrame::Close {
                    tunnel: "t1".into()
                },
                AgentFrame::Open(tcp("b", Some(9000)))
            ]
        );
        assert!(live.serving.is_empty());
        assert!(live.pending.contains_key("b"));
    }

    #[test]
    fn a_changed_tunnel_is_closed_then_opened() {
        let mut plan = Plan::new(vec![tcp("a", None)]);
        let mut live = Connected::default();
        live.serving
            .insert("a".into(), ("t1".into(), tcp("a", None)));
        let frames = plan.replace(vec![tcp("a", Some(5))], &mut live);
        assert_eq!(
            frames,
            vec![
                AgentFrame::Close {
                    tunnel: "t1".into()
                },
                AgentFrame::Open(tcp("a", Some(5)))
            ]
        );
        assert!(!plan.still_wanted(&tcp("a", None)));
        assert!(plan.still_wanted(&tcp("a", Some(5))));
    }
}
