//! Where and how an agent connects: the edges it was given (`--edge a,b,c`),
//! tried in turn, and the transports it tries at each one (`--transport
//! auto`: QUIC first, then WebSocket, then TCP, when the faster one cannot
//! connect, e.g. where UDP is blocked).

use std::time::Duration;

use anyhow::{bail, Result};
use beamd_events::vocabulary::TransportKind;
use beamd_transports::{QuicTransport, StreamTls, TcpTransport, WsTransport};

/// How an agent reaches the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTransport {
    /// QUIC, falling back to WebSocket, then TCP, at each edge.
    Auto,
    /// QUIC over UDP (TLS 1.3 always).
    Quic,
    /// WebSocket over TCP.
    Ws,
    /// Plain TCP.
    Tcp,
}

impl AgentTransport {
    /// Parses `auto`, `quic`, `ws` or `tcp`, in any case (as in a share link).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Some(AgentTransport::Auto);
        }
        TransportKind::parse(s).map(Self::from)
    }
}

impl From<TransportKind> for AgentTransport {
    fn from(t: TransportKind) -> Self {
        match t {
            TransportKind::Quic => AgentTransport::Quic,
            TransportKind::Ws => AgentTransport::Ws,
            TransportKind::Tcp => AgentTransport::Tcp,
        }
    }
}

/// The order `--transport auto` tries transports in.
const AUTO: [TransportKind; 3] = [TransportKind::Quic, TransportKind::Ws, TransportKind::Tcp];

/// A QUIC handshake to an address that drops UDP waits for its idle timeout;
/// with another transport or edge to try, the agent moves on sooner.
pub(super) const QUIC_FALLBACK_AFTER: Duration = Duration::from_secs(4);

/// One edge address from `--edge`, with the transport it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EdgeAddr {
    /// HOST:PORT.
    pub addr: String,
    /// From a `quic://`, `ws://` or `tcp://` prefix.
    pub forced: Option<TransportKind>,
}

impl EdgeAddr {
    /// The transports to try at this edge, in order.
    pub fn transports(&self, chosen: AgentTransport) -> Vec<TransportKind> {
        match (self.forced, chosen) {
            (Some(t), _) => vec![t],
            (None, AgentTransport::Auto) => AUTO.to_vec(),
            (None, AgentTransport::Quic) => vec![TransportKind::Quic],
            (None, AgentTransport::Ws) => vec![TransportKind::Ws],
            (None, AgentTransport::Tcp) => vec![TransportKind::Tcp],
        }
    }
}

/// Parses `--edge`: `[quic://|ws://|tcp://]HOST:PORT`, comma-separated.
pub(super) fn parse_edges(list: &str) -> Result<Vec<EdgeAddr>> {
    let mut edges = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            bail!("--edge {list:?} has an empty entry: give HOST:PORT[,HOST:PORT…]");
        }
        let (forced, addr) = match item.split_once("://") {
            Some((scheme, addr)) => match TransportKind::parse(scheme) {
                Some(t) => (Some(t), addr),
                None => bail!("--edge {item:?}: unknown transport {scheme:?} (quic, ws or tcp)"),
            },
            None => (None, item),
        };
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            bail!("--edge {item:?} is not HOST:PORT");
        }
        edges.push(EdgeAddr {
            addr: addr.trim_end_matches('/').to_string(),
            forced,
        });
    }
    Ok(edges)
}

/// The transports an agent may dial, built once.
pub(super) struct Dialers {
    pub quic: Option<QuicTransport>,
    pub ws: WsTransport,
    pub tcp: TcpTransport,
}

impl Dialers {
    /// Dialers for the transports `edges` may use; `tls` wraps ws and tcp.
    pub fn new(
        quic: bool,
        tls: bool,
        trust: Option<&beamd_transports::tls::Trust>,
    ) -> Result<Self> {
        let quic = match (quic, trust) {
            (true, Some(trust)) => Some(QuicTransport::new(None, Some(trust))?),
            _ => None,
        };
        let stream_tls = || StreamTls::new(None, trust);
        let (ws, tcp) = if tls {
            (
                WsTransport::with_tls(stream_tls()?),
                TcpTransport::with_tls(stream_tls()?),
            )
        } else {
            (WsTransport::plain(), TcpTransport::plain())
        };
        Ok(Self { quic, ws, tcp })
    }
}

/// Whether any of `edges` may be dialled over QUIC.
pub(super) fn uses_quic(edges: &[EdgeAddr], chosen: AgentTransport) -> bool {
    edges
        .iter()
        .any(|e| e.transports(chosen).contains(&TransportKind::Quic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_lists_parse() {
        let edges = parse_edges("a.example:7000, ws://b.example:7080,tcp://10.0.0.3:7001").unwrap();
        assert_eq!(edges.len(), 3);
        assert_eq!(edges[0].addr, "a.example:7000");
        assert_eq!(edges[0].transports(AgentTransport::Auto), AUTO.to_vec());
        assert_eq!(
            edges[0].transports(AgentTransport::Ws),
            vec![TransportKind::Ws]
        );
        assert_eq!(
            edges[1].transports(AgentTransport::Auto),
            vec![TransportKind::Ws]
        );
        assert_eq!(edges[2].forced, Some(TransportKind::Tcp));
        assert!(uses_quic(&edges, AgentTransport::Auto));
        assert!(!uses_quic(&edges[1..], AgentTransport::Auto));
        for bad in ["", "a:1,,b:2", "a", "a:port", ":7000", "udp://a:1"] {
            assert!(parse_edges(bad).is_err(), "{bad:?}");
        }
    }
}
