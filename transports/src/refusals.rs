//! The count of connections turned away (`beamd_connections_refused_total`):
//! its name, HELP text and every label set it can carry, declared here
//! because the transports record it; the edge's metric catalog includes this
//! family, and the edge counts its own refusals through [`count_refusal`].

/// The counter's name.
pub const CONNECTIONS_REFUSED: &str = "beamd_connections_refused_total";

/// The counter's HELP text.
pub const CONNECTIONS_REFUSED_HELP: &str =
    "Connections turned away, by reason (fd_watermark: too few file descriptors left, \
     see --fd-reserve; tenant_cap: the tenant holds its cap of open connections, see \
     --max-tenant-connections) and by the listener they came in on.";

/// The label naming why a connection was turned away.
const REASON: &str = "reason";

/// The label naming the listener a connection came in on.
const LISTENER: &str = "listener";

/// Why a connection was turned away: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// Fewer descriptors than the reserve were left (see `fd_watermark`).
    FdWatermark,
    /// The tenant already holds its cap of open connections to its agents.
    TenantCap,
    /// A data channel presented a ticket no agent connection holds.
    UnknownTicket,
}

impl RefusalReason {
    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            RefusalReason::FdWatermark => "fd_watermark",
            RefusalReason::TenantCap => "tenant_cap",
            RefusalReason::UnknownTicket => "unknown_ticket",
        }
    }
}

/// The listener a connection came in on: the `listener` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// Agents over TCP.
    AgentTcp,
    /// Agents over WebSocket.
    AgentWs,
    /// A tunnel's public TCP port.
    PublicTcp,
    /// A tunnel's public UDP port (a new client address is a new flow).
    PublicUdp,
    /// The public HTTP(S) listener.
    PublicHttp,
    /// The REST API (and `/metrics`).
    Api,
}

impl ListenerKind {
    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            ListenerKind::AgentTcp => "agent_tcp",
            ListenerKind::AgentWs => "agent_ws",
            ListenerKind::PublicTcp => "public_tcp",
            ListenerKind::PublicUdp => "public_udp",
            ListenerKind::PublicHttp => "public_http",
            ListenerKind::Api => "api",
        }
    }
}

/// The labels of one series of the counter.
const fn series(reason: RefusalReason, on: ListenerKind) -> [(&'static str, &'static str); 2] {
    [(REASON, reason.label()), (LISTENER, on.label())]
}

/// Every label set the counter can be recorded with: the watermark guards
/// every TCP listener; the tenant cap guards the public listeners and the
/// API's replay of a captured request through its tunnel; tickets guard the
/// agent listeners that take data channels (TCP, WebSocket). The edge registers
/// each at zero, so an alert on a refusal has a series from the first scrape.
pub const CONNECTIONS_REFUSED_SERIES: &[&[(&str, &str)]] = {
    use ListenerKind::*;
    use RefusalReason::*;
    &[
        &series(FdWatermark, AgentTcp),
        &series(FdWatermark, AgentWs),
        &series(FdWatermark, PublicTcp),
        &series(FdWatermark, PublicHttp),
        &series(FdWatermark, Api),
        &series(TenantCap, PublicTcp),
        &series(TenantCap, PublicUdp),
        &series(TenantCap, PublicHttp),
        &series(TenantCap, Api),
        &series(UnknownTicket, AgentTcp),
        &series(UnknownTicket, AgentWs),
    ]
};

/// Counts one connection turned away on `on` for `reason`.
pub fn count_refusal(reason: RefusalReason, on: ListenerKind) {
    metrics::counter!(
        CONNECTIONS_REFUSED,
        REASON => reason.label(),
        LISTENER => on.label()
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_series_cover_every_listener() {
        use ListenerKind::*;
        for on in [AgentTcp, AgentWs, PublicTcp, PublicHttp, Api] {
            let labels = series(RefusalReason::FdWatermark, on);
            assert!(
                CONNECTIONS_REFUSED_SERIES.contains(&&labels[..]),
                "{on:?} is not registered"
            );
        }
    }
}
