//! Every metric family the edge exports at `/metrics`, declared once: its
//! name, kind, unit, HELP text and the label sets it is recorded with. When
//! the recorder is installed each family is described (its `# HELP`) and each
//! label set registered at zero, so every family is in the first scrape and
//! an alert on a missing series is never blind; the record sites name their
//! family from here. The names follow Prometheus's conventions: base units
//! in the name (`_seconds`, `_bytes`), `_total` on counters only, and label
//! values from a fixed set (never a path, a host or an id).

use metrics::Unit;

/// The labels of one series, as (name, value) pairs.
pub type Labels = &'static [(&'static str, &'static str)];

/// What a family's series hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A count that only goes up (named `…_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations in buckets, with their sum and count.
    Histogram,
}

/// One metric family: all that Prometheus is told about it.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The name, as exported.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit its name ends in, if it has one.
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Every label set it is recorded with (one empty set when unlabelled).
    pub series: &'static [Labels],
}

impl Family {
    /// An unlabelled family without a unit.
    const fn new(kind: Kind, name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind,
            unit: None,
            help,
            series: &[&[]],
        }
    }

    /// The family, measured in `unit`.
    const fn in_unit(self, unit: Unit) -> Self {
        Self {
            unit: Some(unit),
            ..self
        }
    }

    /// The family, recorded with these label sets.
    const fn labelled(self, series: &'static [Labels]) -> Self {
        Self { series, ..self }
    }
}

/// Tunnel bytes from public clients toward the agent.
pub const DIRECTION_IN: Labels = &[("direction", "in")];

/// Tunnel bytes from the agent back to public clients.
pub const DIRECTION_OUT: Labels = &[("direction", "out")];

/// `beamd_actors_alive`.
pub const ACTORS_ALIVE: Family = Family::new(
    Kind::Gauge,
    "beamd_actors_alive",
    "Entity actors running now (tenants, keys, tunnels, domains, nodes); idle ones stop.",
);

/// `beamd_body_store_bytes`.
pub const BODY_STORE_BYTES: Family = Family::new(
    Kind::Gauge,
    "beamd_body_store_bytes",
    "Bytes of request and response details (headers, bodies) the body store holds.",
)
.in_unit(Unit::Bytes);

/// `beamd_agent_sessions`.
pub const AGENT_SESSIONS: Family = Family::new(
    Kind::Gauge,
    "beamd_agent_sessions",
    "Agent connections welcomed and not yet ended (each serves one or more tunnels).",
);

/// `beamd_agent_streams_opened_total`, recorded by the transports crate.
pub const AGENT_STREAMS_OPENED: Family = Family::new(
    Kind::Counter,
    beamd_transports::STREAMS_OPENED,
    beamd_transports::STREAMS_OPENED_HELP,
)
.labelled(&[&[("carrier", "data_channel")], &[("carrier", "mux")]]);

/// `beamd_captures_dropped_total`.
pub const CAPTURES_DROPPED: Family = Family::new(
    Kind::Counter,
    "beamd_captures_dropped_total",
    "Captured requests not recorded because the disk is short of free space.",
);

/// `beamd_acme_orders_total{result}`.
pub const ACME_ORDERS: Family = Family::new(
    Kind::Counter,
    "beamd_acme_orders_total",
    "Certificate orders to the ACME CA, by result: issued or failed.",
)
.labelled(&[&[("result", "issued")], &[("result", "failed")]]);

/// `beamd_witness_cosigned_size{witness}`: its label values are the
/// witnesses an edge is given, so it has no series until it runs with one.
pub const WITNESS_COSIGNED_SIZE: Family = Family::new(
    Kind::Gauge,
    "beamd_witness_cosigned_size",
    "The largest checkpoint size each witness (--witness) cosigned since the edge started.",
)
.labelled(&[]);

/// `beamd_witness_failures_total{witness}`.
pub const WITNESS_FAILURES: Family = Family::new(
    Kind::Counter,
    "beamd_witness_failures_total",
    "Checkpoint submissions to each witness that failed (unreachable, refused, or a bad cosignature).",
)
.labelled(&[]);

/// `beamd_udp_datagrams_dropped_total`.
pub const UDP_DATAGRAMS_DROPPED: Family = Family::new(
    Kind::Counter,
    "beamd_udp_datagrams_dropped_total",
    "Datagrams of UDP flows dropped at the edge, larger than the QUIC path to the agent carries (never split).",
);

/// `beamd_connections_refused_total`, recorded by the transports crate and
/// the edge's tenant cap; the transports crate declares it.
pub const CONNECTIONS_REFUSED: Family = Family::new(
    Kind::Counter,
    beamd_transports::CONNECTIONS_REFUSED,
    beamd_transports::CONNECTIONS_REFUSED_HELP,
)
.labelled(beamd_transports::CONNECTIONS_REFUSED_SERIES);

/// `beamd_directory_retries_total`.
pub const DIRECTORY_RETRIES: Family = Family::new(
    Kind::Counter,
    "beamd_directory_retries_total",
    "Creations (of a tenant, account, tunnel or domain) decided again because another \
     creation reached the log first.",
);

/// `beamd_events_appended_total`.
pub const EVENTS_APPENDED: Family = Family::new(
    Kind::Counter,
    "beamd_events_appended_total",
    "Events this node appended to the event log.",
);

/// `beamd_http_request_duration_seconds`.
pub const HTTP_REQUEST_DURATION: Family = Family::new(
    Kind::Histogram,
    "beamd_http_request_duration_seconds",
    "Time from sending an HTTP request through a tunnel to its response head, in seconds.",
)
.in_unit(Unit::Seconds);

/// `beamd_http_requests_total`.
pub const HTTP_REQUESTS: Family = Family::new(
    Kind::Counter,
    "beamd_http_requests_total",
    "HTTP requests sent through a tunnel from the public HTTP listener (answered by the \
     service or, on a failure or timeout, by the edge).",
);

/// `beamd_keys_active`.
pub const KEYS_ACTIVE: Family = Family::new(
    Kind::Gauge,
    "beamd_keys_active",
    "Keys issued and not revoked.",
);

/// `beamd_log_append_seconds`.
pub const LOG_APPEND: Family = Family::new(
    Kind::Histogram,
    "beamd_log_append_seconds",
    "Time from asking the log writer to append events until they are committed, in seconds.",
)
.in_unit(Unit::Seconds);

/// `beamd_log_head_seq`.
pub const LOG_HEAD_SEQ: Family = Family::new(
    Kind::Gauge,
    "beamd_log_head_seq",
    "Sequence number of the newest event the projections have applied.",
);

/// `beamd_password_hashes_total`.
pub const PASSWORD_HASHES: Family = Family::new(
    Kind::Counter,
    "beamd_password_hashes_total",
    "Passwords hashed or checked against their hash (sign-up, sign-in, password reset).",
);

/// `beamd_request_details_dropped_total`.
pub const REQUEST_DETAILS_DROPPED: Family = Family::new(
    Kind::Counter,
    "beamd_request_details_dropped_total",
    "Request details (headers and bodies) dropped because the body store's writer was behind.",
);

/// `beamd_tenants`.
pub const TENANTS: Family = Family::new(Kind::Gauge, "beamd_tenants", "Tenants created.");

/// `beamd_tunnel_bytes_total`.
pub const TUNNEL_BYTES: Family = Family::new(
    Kind::Counter,
    "beamd_tunnel_bytes_total",
    "Bytes carried through tunnels, by direction (in: from public clients toward the agent; \
     out: back to them).",
)
.in_unit(Unit::Bytes)
.labelled(&[DIRECTION_IN, DIRECTION_OUT]);

/// `beamd_tunnel_connections_total`.
pub const TUNNEL_CONNECTIONS: Family = Family::new(
    Kind::Counter,
    "beamd_tunnel_connections_total",
    "Public connections accepted for tunnels.",
);

/// `beamd_tunnels_offline`.
pub const TUNNELS_OFFLINE: Family = Family::new(
    Kind::Gauge,
    "beamd_tunnels_offline",
    "Tunnels whose agent is gone but whose name is still held.",
);

/// `beamd_tunnels_online`.
pub const TUNNELS_ONLINE: Family = Family::new(
    Kind::Gauge,
    "beamd_tunnels_online",
    "Tunnels with a connected agent, on any node.",
);

/// `beamd_tunnels_taken_over_total`.
pub const TUNNELS_TAKEN_OVER: Family = Family::new(
    Kind::Counter,
    "beamd_tunnels_taken_over_total",
    "Tunnels this node let go because their agent resumed them on another node.",
);

/// `beamd_tcp_connections_copied_total`, recorded by the pump.
pub const TCP_COPIES: Family = Family::new(
    Kind::Counter,
    beamd_transports::CONNECTIONS_COPIED,
    beamd_transports::CONNECTIONS_COPIED_HELP,
)
.labelled(&[&[("copy", "splice")], &[("copy", "user")]]);

/// Every family, in name order.
pub const ALL: &[Family] = &[
    ACME_ORDERS,
    ACTORS_ALIVE,
    AGENT_SESSIONS,
    AGENT_STREAMS_OPENED,
    BODY_STORE_BYTES,
    CAPTURES_DROPPED,
    CONNECTIONS_REFUSED,
    DIRECTORY_RETRIES,
    EVENTS_APPENDED,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    KEYS_ACTIVE,
    LOG_APPEND,
    LOG_HEAD_SEQ,
    PASSWORD_HASHES,
    REQUEST_DETAILS_DROPPED,
    TCP_COPIES,
    TENANTS,
    TUNNEL_BYTES,
    TUNNEL_CONNECTIONS,
    TUNNELS_OFFLINE,
    TUNNELS_ONLINE,
    TUNNELS_TAKEN_OVER,
    UDP_DATAGRAMS_DROPPED,
    WITNESS_COSIGNED_SIZE,
    WITNESS_FAILURES,
];

/// Describes every family to the installed recorder and registers each of
/// its label sets at zero (a value already recorded is kept).
pub fn describe_and_register() {
    for family in ALL {
        let (name, help, unit) = (family.name, family.help, family.unit);
        metrics::with_recorder(|r| match family.kind {
            Kind::Counter => r.describe_counter(name.into(), unit, help.into()),
            Kind::Gauge => r.describe_gauge(name.into(), unit, help.into()),
            Kind::Histogram => r.describe_histogram(name.into(), unit, help.into()),
        });
        for labels in family.series {
            register(family, labels);
        }
    }
}

/// Registers one series of `family` without changing its value.
fn register(family: &Family, labels: Labels) {
    match family.kind {
        Kind::Counter => metrics::counter!(family.name, labels).increment(0),
        Kind::Gauge => metrics::gauge!(family.name, labels).increment(0.0),
        // A registered histogram is rendered with empty buckets.
        Kind::Histogram => drop(metrics::histogram!(family.name, labels)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suffix a family's unit asks of its name.
    fn unit_suffix(unit: Unit) -> &'static str {
        match unit {
            Unit::Seconds => "_seconds",
            Unit::Bytes => "_bytes",
            other => panic!("{other:?} is not a base unit Prometheus names use"),
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for f in ALL {
            assert!(f.name.starts_with("beamd_"), "{}", f.name);
            let stem = f.name.strip_suffix("_total");
            assert_eq!(
                stem.is_some(),
                f.kind == Kind::Counter,
                "{}: `_total` on counters only",
                f.name
            );
            if let Some(unit) = f.unit {
                let stem = stem.unwrap_or(f.name);
                assert!(stem.ends_with(unit_suffix(unit)), "{}: unit", f.name);
            }
            assert!(!f.help.is_empty(), "{}: HELP", f.name);
        }
    }

    #[test]
    fn names_are_unique_and_listed_in_order() {
        let names: Vec<_> = ALL.iter().map(|f| f.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn label_sets_are_distinct_and_share_their_label_names() {
        for f in ALL {
            let keys = |l: Labels| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
            for (i, labels) in f.series.iter().enumerate() {
                assert_eq!(keys(labels), keys(f.series[0]), "{}", f.name);
                assert!(!f.series[..i].contains(labels), "{}: {labels:?}", f.name);
            }
        }
    }
}
