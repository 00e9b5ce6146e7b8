//! Events of a tunnel: opened, offline, released, and its aggregated traffic.

use serde::{Deserialize, Serialize};

/// What a tunnel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TunnelProtocol {
    /// Public HTTP routed by host name.
    Http,
    /// A public TCP port.
    Tcp,
    /// A public UDP port: each client address is a flow to the agent.
    Udp,
}

/// The transport an agent connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportKind {
    /// QUIC (quinn).
    Quic,
    /// WebSocket.
    Ws,
    /// Plain TCP (optionally TLS).
    Tcp,
}

impl TransportKind {
    /// `quic`, `ws` or `tcp`: its name on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Quic => "quic",
            TransportKind::Ws => "ws",
            TransportKind::Tcp => "tcp",
        }
    }

    /// Parses `quic`, `ws` or `tcp`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        [TransportKind::Quic, TransportKind::Ws, TransportKind::Tcp]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// A tunnel was opened by an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelOpened {
    /// The owning tenant's id.
    pub tenant: String,
    /// The key that opened it.
    pub key: String,
    /// HTTP or TCP.
    pub protocol: TunnelProtocol,
    /// The host name label (HTTP tunnels).
    pub name: Option<String>,
    /// The public port (TCP tunnels).
    pub port: Option<u16>,
    /// The agent's transport.
    pub transport: TransportKind,
    /// The edge node that serves it.
    pub node: String,
    /// The agent-side address it forwards to.
    pub local_addr: String,
    /// Whether it is a pool: agents join it (`TunnelMemberJoined`, the first
    /// one with this event) instead of taking it over. Absent: not a pool.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool: bool,
}

/// An agent connection joined a pool tunnel: new public connections and
/// requests are spread over its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelMemberJoined {
    /// The member's id: the edge's id of the agent connection (`ses_…`).
    pub member: String,
    /// The edge node the member is connected to.
    pub node: String,
    /// Its transport.
    pub transport: TransportKind,
    /// The key it presented (a key of the pool's tenant).
    pub key: String,
    /// The agent's address as the edge saw it.
    #[serde(default)]
    pub peer: String,
    /// A digest of the access rules it serves with (networks, password,
    /// sign-in; empty: open to all). Every member of a pool serves with the
    /// same ones.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules: String,
}

/// A member left its pool (its agent disconnected, closed the tunnel, or its
/// edge went away). The last one leaving is followed by `TunnelWentOffline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelMemberLeft {
    /// The member's id.
    pub member: String,
    /// Why.
    pub reason: String,
}

/// The tunnel's agent went away; its name or port stays reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelWentOffline {
    /// Why (agent closed, timeout, node left).
    pub reason: String,
}

/// An agent reconnected to an offline tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelResumed {
    /// The edge node that now serves it.
    pub node: String,
    /// The agent's transport.
    pub transport: TransportKind,
}

/// The tunnel was released; its name or port is free again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TunnelReleased {}

/// Bytes and connections summed over one flush window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRecorded {
    /// Bytes from public clients into the tunnel.
    pub bytes_in: u64,
    /// Bytes from the tunnel out to public clients.
    pub bytes_out: u64,
    /// Public connections opened in the window.
    pub connections: u64,
    /// HTTP requests completed in the window.
    pub requests: u64,
    /// Length of the window in milliseconds.
    pub window_ms: u64,
    /// Datagrams carried either way (UDP tunnels).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub datagrams: u64,
    /// The pool member whose traffic it was (pool tunnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The key that member presented: the key the bytes count against
    /// (absent: the key that opened the tunnel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much of a tunnel's HTTP requests the inspector keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InspectMode {
    /// Nothing: no `RequestCaptured` (bytes and request counts still are).
    Off,
    /// Metadata: one `RequestCaptured` per request.
    #[default]
    Meta,
    /// Metadata, plus headers and body prefixes in the body store.
    Full,
}

impl InspectMode {
    /// `off`, `meta` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            InspectMode::Off => "off",
            InspectMode::Meta => "meta",
            InspectMode::Full => "full",
        }
    }

    /// Parses `off`, `meta` or `full`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(InspectMode::Off),
            "meta" => Some(InspectMode::Meta),
            "full" => Some(InspectMode::Full),
            _ => None,
        }
    }
}

/// The tunnel's capture mode was set (by its agent at (re)connect, or over the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelInspectSet {
    /// The new mode.
    pub mode: InspectMode,
}

/// Metadata of one HTTP request the edge took for a tunnel (never its body):
/// proxied to the agent's service, or answered by the edge itself (`refused`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestCaptured {
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Response status code.
    pub status: u16,
    /// Time to the end of the response.
    pub duration_ms: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Client IP.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// HTTP version (`HTTP/1.1`, `h2`).
    pub proto: String,
    /// Host header.
    pub host: String,
    /// When the request arrived (ms since the epoch). Captures are recorded
    /// in batches, so this, not the envelope's time, dates the request; 0 in
    /// events written before the field existed.
    #[serde(default)]
    pub started_at: u64,
    /// The gateway route that took it, if any.
    #[serde(default)]
    pub route: Option<String>,
    /// The gateway consumer whose key it carried, if any.
    #[serde(default)]
    pub consumer: Option<String>,
    /// The request's id (`req_` and 16 hex digits), made when it arrived;
    /// full capture's headers and bodies are kept under it. Events written
    /// before every request had one carry it only under full capture (else
    /// it is empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Whether its headers and body prefixes went to the body store (full
    /// capture). Absent in events written before every request had an id:
    /// there, an id means full capture (see [`RequestCaptured::has_detail`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<bool>,
    /// The request body as it passed, with full capture (boxed: most
    /// requests have none, and events stay small in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Box<BodySeen>>,
    /// The response body as it passed, with full capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Box<BodySeen>>,
    /// When this request was a replay recorded before requests were named
    /// by id: the seq of the request it replayed. Kept for reading old
    /// events; new replays name their original in `replay_of_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
    /// When this request was a replay: the id of the request it replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of_id: Option<String>,
    /// When the edge answered the request itself and never passed it on:
    /// why. `no_route`, `missing_key`, `invalid_key`, `service_gone`,
    /// `service_offline` (the gateway), `rate_limited:<tier or route>:<n>/min`
    /// (the gateway's rate limit), `credentials`, `network`, `sign_in`,
    /// `sign_in_not_allowed` (the tunnel's access rules; sign-in with
    /// OpenID Connect), `tenant_connections`, `tunnel_unreachable` (no stream
    /// to the agent). Such a request has no body and no detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The pool member that served it (pool tunnels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Who had signed in at the edge (a tunnel behind OpenID Connect): the
    /// provider's email for them, else their subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl RequestCaptured {
    /// Whether its headers and body prefixes were handed to the body store.
    pub fn has_detail(&self) -> bool {
        self.detail.unwrap_or(!self.id.is_empty())
    }
}

/// Captured requests of one tunnel, as one event: what a [`RequestCaptured`]
/// each would say, in a compact encoding. The edge records a traffic
/// window's captures as a few of these instead of one event per request, so
/// that a request costs a row, not a record, a hash, a Merkle leaf and a fold.
///
/// Stored as `{layout, rows}`: `rows` are positional arrays (no field names),
/// in the order of [`CaptureRow`] for layout 1. A later layout is a new
/// number; a layout this build does not know fails to decode, never
/// misreads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestsCaptured {
    /// The requests, in the order they were handed to the log.
    pub requests: Vec<RequestCaptured>,
}

/// The row layout written when no request names a pool member: layout 1
/// (what every build since captures were batched reads).
const CAPTURE_LAYOUT: u16 = 1;
/// The row layout written when some request names the pool member that
/// served it (and none a signed-in user): layout 1's fields, then the member.
const CAPTURE_LAYOUT_MEMBER: u16 = 2;
/// The row layout written when some request names who had signed in:
/// layout 2's fields, then the user.
const CAPTURE_LAYOUT_USER: u16 = 3;

/// How many fields past layout 1's a row of `layout` has.
fn extra_fields(layout: u16) -> usize {
    match layout {
        CAPTURE_LAYOUT_USER => 2,
        CAPTURE_LAYOUT_MEMBER => 1,
        _ => 0,
    }
}

/// A row: layout 1 is method, path, status, duration, bytes in, bytes out,
/// ip, user agent, proto, host, started at, route, consumer, id, detail,
/// request body, response body, replay of (id), refused; layout 2 adds the
/// pool member, layout 3 the member and the user. Bodies are (sha256, len,
/// truncated).
struct CaptureRow(
    String,
    String,
    u16,
    u64,
    u64,
    u64,
    String,
    String,
    String,
    String,
    u64,
    Option<String>,
    Option<String>,
    String,
    Option<bool>,
    Option<(String, u64, bool)>,
    Option<(String, u64, bool)>,
    Option<String>,
    Option<String>,
    /// The pool member (layouts 2 and 3), else `None`.
    Option<Option<String>>,
    /// The signed-in user (layout 3), else `None`.
    Option<Option<String>>,
);

impl<'de> Deserialize<'de> for CaptureRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> serde::de::Visitor<'de> for RowVisitor {
            type Value = CaptureRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a captured request's row of 19 to 21 fields")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CaptureRow, A::Error> {
                use serde::de::Error;
                let mut n = 0usize;
                macro_rules! next {
                    () => {{
                        let v = seq
                            .next_element()?
                            .ok_or_else(|| A::Error::invalid_length(n, &self))?;
                        n += 1;
                        v
                    }};
                }
                let row = CaptureRow(
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    next!(),
                    seq.next_element::<Option<String>>()?,
                    None,
                );
                let row = match row.19 {
                    Some(_) => CaptureRow {
                        20: seq.next_element::<Option<String>>()?,
                        ..row
                    },
                    None => row,
                };
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(n + 3, &self));
                }
                Ok(row)
            }
        }
        d.deserialize_seq(RowVisitor)
    }
}

/// Reads `{layout, rows}`, the layout first (as written), so that rows of a
/// layout this build does not know are refused as such.
struct RowsVisitor;

impl<'de> serde::de::Visitor<'de> for RowsVisitor {
    type Value = Vec<CaptureRow>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("captured requests: a layout, then rows")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut layout = None;
        let mut rows = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "layout" => layout = Some(map.next_value::<u16>()?),
                "rows" => match layout {
                    Some(l @ (CAPTURE_LAYOUT | CAPTURE_LAYOUT_MEMBER | CAPTURE_LAYOUT_USER)) => {
                        let read = map.next_value::<Vec<CaptureRow>>()?;
                        // Each layout has its own length: a row of another one is refused.
                        let extra = |r: &CaptureRow| {
                            usize::from(r.19.is_some()) + usize::from(r.20.is_some())
                        };
                        if read.iter().any(|r| extra(r) != extra_fields(l)) {
                            return Err(A::Error::custom(format!(
                                "a captured request's row does not have layout {l}'s fields"
                            )));
                        }
                        rows = Some(read)
                    }
                    Some(other) => {
                        return Err(A::Error::custom(format!(
                        "captured requests in row layout {other}, which this beamd does not know"
                    )))
                    }
                    None => {
                        return Err(A::Error::custom(
                            "captured requests' rows before their layout",
                        ))
                    }
                },
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        rows.ok_or_else(|| A::Error::missing_field("rows"))
    }
}

/// A borrowed row, serialized as the tuple [`CaptureRow`] is, without
/// copying the request; with as many fields past layout 1's as its layout has.
struct RowRef<'a>(&'a RequestCaptured, usize);

impl Serialize for RowRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        fn body(b: &Option<Box<BodySeen>>) -> Option<(&str, u64, bool)> {
            b.as_ref().map(|b| (b.sha256.as_str(), b.len, b.truncated))
        }
        let r = self.0;
        let mut t = s.serialize_tuple(19 + self.1)?;
        t.serialize_element(&r.method)?;
        t.serialize_element(&r.path)?;
        t.serialize_element(&r.status)?;
        t.serialize_element(&r.duration_ms)?;
        t.serialize_element(&r.bytes_in)?;
        t.serialize_element(&r.bytes_out)?;
        t.serialize_element(&r.ip)?;
        t.serialize_element(&r.user_agent)?;
        t.serialize_element(&r.proto)?;
        t.serialize_element(&r.host)?;
        t.serialize_element(&r.started_at)?;
        t.serialize_element(&r.route)?;
        t.serialize_element(&r.consumer)?;
        t.serialize_element(&r.id)?;
        t.serialize_element(&r.detail)?;
        t.serialize_element(&body(&r.request_body))?;
        t.serialize_element(&body(&r.response_body))?;
        t.serialize_element(&r.replay_of_id)?;
        t.serialize_element(&r.refused)?;
        if self.1 >= 1 {
            t.serialize_element(&r.member)?;
        }
        if self.1 >= 2 {
            t.serialize_element(&r.user)?;
        }
        t.end()
    }
}

struct RowsRef<'a>(&'a [RequestCaptured], usize);

impl Serialize for RowsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| RowRef(r, self.1)))
    }
}

/// How people read a window (JSON: `beamd replay`, the event feed): each
/// request with its field names.
#[derive(Serialize, Deserialize)]
struct Readable<R> {
    requests: R,
}

impl Serialize for RequestsCaptured {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if s.is_human_readable() {
            return Readable {
                requests: &self.requests,
            }
            .serialize(s);
        }
        let layout = if self.requests.iter().any(|r| r.user.is_some()) {
            CAPTURE_LAYOUT_USER
        } else if self.requests.iter().any(|r| r.member.is_some()) {
            CAPTURE_LAYOUT_MEMBER
        } else {
            CAPTURE_LAYOUT
        };
        let mut st = s.serialize_struct("RequestsCaptured", 2)?;
        st.serialize_field("layout", &layout)?;
        st.serialize_field("rows", &RowsRef(&self.requests, extra_fields(layout)))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for RequestsCaptured {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let r = Readable::<Vec<RequestCaptured>>::deserialize(d)?;
            return Ok(Self {
                requests: r.requests,
            });
        }
        let rows = d.deserialize_struct("RequestsCaptured", &["layout", "rows"], RowsVisitor)?;
        let body = |b: Option<(String, u64, bool)>| {
            b.map(|(sha256, len, truncated)| {
                Box::new(BodySeen {
                    sha256,
                    len,
                    truncated,
                })
            })
        };
        let requests = rows
            .into_iter()
            .map(|row| RequestCaptured {
                method: row.0,
                path: row.1,
                status: row.2,
                duration_ms: row.3,
                bytes_in: row.4,
                bytes_out: row.5,
                ip: row.6,
                user_agent: row.7,
                proto: row.8,
                host: row.9,
                started_at: row.10,
                route: row.11,
                consumer: row.12,
                id: row.13,
                detail: row.14,
                request_body: body(row.15),
                response_body: body(row.16),
                replay_of: None,
                replay_of_id: row.17,
                refused: row.18,
                member: row.19.flatten(),
                user: row.20.flatten(),
            })
            .collect();
        Ok(Self { requests })
    }
}

/// What the log records of a captured body: enough to prove what was seen,
/// while the bytes themselves live (and are pruned) in the body store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BodySeen {
    /// SHA-256 of the whole body, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
    /// Whether the body store keeps only its first bytes.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(i: u64) -> RequestCaptured {
        RequestCaptured {
            method: "POST".into(),
            path: format!("/hooks/{i}"),
            status: 201,
            duration_ms: i,
            bytes_in: 10 + i,
            bytes_out: 20 + i,
            ip: "203.0.113.7".into(),
            user_agent: "curl/8".into(),
            proto: "HTTP/1.1".into(),
            host: "a.example".into(),
            started_at: 1_700_000_000_000 + i,
            route: Some("rt_1".into()),
            consumer: None,
            id: format!("req_{i:016x}"),
            detail: Some(i.is_multiple_of(2)),
            request_body: Some(Box::new(BodySeen {
                sha256: "ab".repeat(32),
                len: 10 + i,
                truncated: false,
            })),
            response_body: None,
            replay_of: None,
            replay_of_id: (i == 3).then(|| "req_0000000000000001".into()),
            refused: (i == 4).then(|| "no_route".into()),
            member: None,
            user: None,
        }
    }

    fn layout_of(bytes: &[u8]) -> u16 {
        #[derive(Deserialize)]
        struct Head {
            layout: u16,
        }
        rmp_serde::from_slice::<Head>(bytes)
            .expect("a layout")
            .layout
    }

    #[test]
    fn rows_name_the_pool_member_in_layout_2_only_when_one_is_named() {
        let plain = RequestsCaptured {
            requests: (0..4).map(full).collect(),
        };
        let bytes = rmp_serde::to_vec_named(&plain).expect("encodes");
        assert_eq!(
            layout_of(&bytes),
            1,
            "no member: the layout every build reads"
        );
        let mut pooled = plain.clone();
        pooled.requests[1].member = Some("ses_00000000000000aa".into());
        let bytes = rmp_serde::to_vec_named(&pooled).expect("encodes");
        assert_eq!(layout_of(&bytes), 2);
        let back: RequestsCaptured = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, pooled, "members kept, and absent where none served");
        // A row of the other layout's length is refused, never misread.
        #[derive(Serialize)]
        struct Forged<'a> {
            layout: u16,
            rows: RowsRef<'a>,
        }
        let forged = Forged {
            layout: 1,
            rows: RowsRef(&pooled.requests, 1),
        };
        let bytes = rmp_serde::to_vec_named(&forged).expect("encodes");
        assert!(rmp_serde::from_slice::<RequestsCaptured>(&bytes).is_err());
    }

    #[test]
    fn rows_name_the_signed_in_user_in_layout_3_and_other_lengths_are_refused() {
        let mut signed = RequestsCaptured {
            requests: (0..4).map(full).collect(),
        };
        signed.requests[2].user = Some("alice@example.test".into());
        let bytes = rmp_serde::to_vec_named(&signed).expect("encodes");
        assert_eq!(layout_of(&bytes), 3);
        let back: RequestsCaptured = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, signed, "users kept, and absent where none signed in");
        #[derive(Serialize)]
        struct Forged<'a> {
            layout: u16,
            rows: RowsRef<'a>,
        }
        for (layout, extra) in [(3, 1), (2, 2), (3, 0), (1, 2)] {
            let forged = Forged {
                layout,
                rows: RowsRef(&signed.requests, extra),
            };
            let bytes = rmp_serde::to_vec_named(&forged).expect("encodes");
            assert!(
                rmp_serde::from_slice::<RequestsCaptured>(&bytes).is_err(),
                "layout {layout} with {extra} extra fields"
            );
        }
    }

    #[test]
    fn captured_rows_round_trip_in_an_envelope_and_are_smaller() {
        let window = RequestsCaptured {
            requests: (0..32).map(full).collect(),
        };
        let event = crate::Event::from(window.clone());
        let (_, bytes) = crate::envelope::encode_record(
            9,
            1,
            &crate::StreamId::new("tun_1").expect("stream"),
            4,
            &event,
            &crate::GENESIS_HASH,
        )
        .expect("encodes");
        let env = crate::envelope::decode_record(9, &bytes).expect("decodes");
        assert_eq!(env.event, event);
        let one_each: usize = window
            .requests
            .iter()
            .map(|r| {
                rmp_serde::to_vec_named(&crate::Event::from(r.clone()))
                    .expect("encodes")
                    .len()
            })
            .sum();
        assert!(
            bytes.len() * 3 < one_each * 2,
            "{} bytes as one event, {one_each} as an event each",
            bytes.len()
        );
    }

    #[test]
    fn people_read_a_window_with_field_names() {
        let window = RequestsCaptured {
            requests: (0..2).map(full).collect(),
        };
        let json = serde_json::to_value(&window).expect("json");
        assert_eq!(json["requests"][1]["path"], "/hooks/1");
        assert_eq!(json["requests"][0]["requestBody"]["len"], 10);
        let back: RequestsCaptured = serde_json::from_value(json).expect("decodes");
        assert_eq!(back, window);
    }

    #[test]
    fn an_unknown_row_layout_is_refused() {
        #[derive(Serialize)]
        struct Future {
            layout: u16,
            rows: Vec<(String,)>,
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            layout: 4,
            rows: vec![("GET".into(),)],
        })
        .expect("encodes");
        let err = rmp_serde::from_slice::<RequestsCaptured>(&bytes).unwrap_err();
        assert!(err.to_string().contains("row layout 4"), "{err}");
    }

    /// `RequestCaptured` as it was written before requests had ids for
    /// every capture, refusals were captured and replays named their
    /// original by id.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Before {
        method: String,
        path: String,
        status: u16,
        duration_ms: u64,
        bytes_in: u64,
        bytes_out: u64,
        ip: String,
        user_agent: String,
        proto: String,
        host: String,
        started_at: u64,
        route: Option<String>,
        consumer: Option<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        replay_of: Option<u64>,
    }

    fn before(id: &str, replay_of: Option<u64>) -> Before {
        Before {
            method: "POST".into(),
            path: "/hooks".into(),
            status: 201,
            duration_ms: 3,
            bytes_in: 10,
            bytes_out: 20,
            ip: "203.0.113.7".into(),
            user_agent: "curl/8".into(),
            proto: "HTTP/1.1".into(),
            host: "a.example".into(),
            started_at: 1_700_000_000_000,
            route: None,
            consumer: None,
            id: id.into(),
            replay_of,
        }
    }

    #[test]
    fn events_written_before_decode() {
        let decode = |b: &Before| -> RequestCaptured {
            let bytes = rmp_serde::to_vec_named(b).expect("encodes");
            rmp_serde::from_slice(&bytes).expect("an old event decodes")
        };
        // Meta capture, before ids: no id, no detail.
        let meta = decode(&before("", None));
        assert_eq!((meta.id.as_str(), meta.has_detail()), ("", false));
        assert_eq!((meta.status, meta.bytes_out), (201, 20));
        // Full capture: an id, so detail; a replay names its original by seq.
        let full = decode(&before("req_00112233aabbccdd", Some(42)));
        assert!(full.has_detail());
        assert_eq!((full.replay_of, full.replay_of_id), (Some(42), None));
        assert_eq!(full.refused, None);
    }

    /// The envelope body as `encode_record` writes it, around an old event.
    #[derive(Serialize)]
    struct OldBody {
        seq: u64,
        at: u64,
        stream: &'static str,
        version: u64,
        schema: u16,
        event: OldEvent,
    }

    #[derive(Serialize)]
    enum OldEvent {
        RequestCaptured(Before),
    }

    #[test]
    fn a_stored_record_written_before_decodes() {
        let body = OldBody {
            seq: 9,
            at: 1_700_000_000_500,
            stream: "tun_1",
            version: 4,
            schema: 1,
            event: OldEvent::RequestCaptured(before("req_00000000000000ff", Some(3))),
        };
        let body = rmp_serde::to_vec_named(&body).expect("encodes");
        let prev = [7u8; 32];
        let hash = crate::envelope::chain_hash(&prev, &body);
        // Record format 1: [format][prev_hash][hash][body].
        let mut record = vec![1u8];
        record.extend_from_slice(&prev);
        record.extend_from_slice(&hash);
        record.extend_from_slice(&body);
        let env = crate::envelope::decode_record(9, &record).expect("an old record decodes");
        let crate::Event::RequestCaptured(r) = env.event else {
            panic!("{:?}", env.event)
        };
        assert_eq!((env.seq, env.version, env.hash), (9, 4, hash));
        assert_eq!(
            (r.replay_of, r.id.as_str()),
            (Some(3), "req_00000000000000ff")
        );
        assert!(r.has_detail());
    }

    #[test]
    fn new_fields_round_trip_and_stay_out_when_unset() {
        let refused = RequestCaptured {
            status: 429,
            id: "req_0123456789abcdef".into(),
            detail: Some(false),
            refused: Some("rate_limited:free:60/min".into()),
            ..RequestCaptured::default()
        };
        let bytes = rmp_serde::to_vec_named(&refused).expect("encodes");
        let back: RequestCaptured = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, refused);
        assert!(!back.has_detail(), "an id alone no longer means detail");
        let plain = rmp_serde::to_vec_named(&RequestCaptured::default()).expect("encodes");
        let text = String::from_utf8_lossy(&plain);
        for absent in ["replayOfId", "refused", "detail"] {
            assert!(!text.contains(absent), "{absent} is left out when unset");
        }
    }
}
