//! What the service behind the edge hears about a public client. The
//! forwarding headers (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`,
//! `X-Forwarded-Host`, `X-Forwarded-Proto`) are the edge's own, set from the
//! TCP peer: a client's values are dropped, unless the peer is a proxy the
//! operator trusts (`--trusted-proxy`), whose values are kept and extended.
//! Only WebSocket upgrades pass; any other `Upgrade` (h2c's among them,
//! which would let a client talk to the service past the gateway's
//! per-request checks) is removed before the request goes on.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};
use ipnet::IpNet;

const FORWARDING: [&str; 5] = [
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Sets the request's forwarding headers for a client connected from
/// `peer`, asking for `host`; returns the client's address: the peer, or
/// for a trusted proxy the address it says it forwards for.
pub(super) fn set_forwarding(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: &str,
    https: bool,
    trusted: &[IpNet],
) -> SocketAddr {
    let proto = if https { "https" } else { "http" };
    let from_proxy = trusted.iter().any(|net| net.contains(&peer.ip()));
    let prior = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (xff, real_ip, forwarded, client) = if from_proxy {
        let xff = prior("x-forwarded-for");
        // The proxy appended the address it saw last.
        let client = xff
            .as_deref()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
            .unwrap_or(peer.ip());
        (
            xff,
            prior("x-real-ip"),
            prior("forwarded"),
            SocketAddr::new(client, peer.port()),
        )
    } else {
        (None, None, None, peer)
    };
    for name in FORWARDING {
        headers.remove(name);
    }
    let ip = peer.ip().to_string();
    let node = match peer.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let element = format!("for={node};host=\"{host}\";proto={proto}");
    let values = [
        (
            "x-forwarded-for",
            match xff {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip,
            },
        ),
        ("x-real-ip", real_ip.unwrap_or(client.ip().to_string())),
        (
            "forwarded",
            match forwarded {
                Some(prior) => format!("{prior}, {element}"),
                None => element,
            },
        ),
        ("x-forwarded-host", host.to_string()),
        ("x-forwarded-proto", proto.to_string()),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    client
}

/// Removes an `Upgrade` to anything but WebSocket, with the headers that
/// belong to it; returns whether a WebSocket upgrade is left.
pub(super) fn only_websocket_upgrades(headers: &mut HeaderMap) -> bool {
    let Some(upgrade) = headers.get(UPGRADE) else {
        return false;
    };
    let websocket = upgrade
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if websocket {
        return true;
    }
    headers.remove(UPGRADE);
    headers.remove("http2-settings");
    let kept: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case("upgrade")
                && !t.eq_ignore_ascii_case("http2-settings")
        })
        .map(str::to_string)
        .collect();
    headers.remove(CONNECTION);
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        if !kept.is_empty() {
            headers.insert(CONNECTION, v);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_clients_own_forwarding_headers_are_replaced_by_the_peer() {
        let mut h = headers(&[
            ("x-forwarded-for", "10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            ("forwarded", "for=10.9.9.9"),
        ]);
        let peer: SocketAddr = "203.0.113.7:5555".parse().unwrap();
        let client = set_forwarding(&mut h, peer, "a.example", true, &[]);
        assert_eq!(client, peer);
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.7;host=\"a.example\";proto=https"
        );
    }

    #[test]
    fn a_trusted_proxys_headers_are_kept_and_extended() {
        let mut h = headers(&[("x-forwarded-for", "198.51.100.1, 198.51.100.2")]);
        let peer: SocketAddr = "10.0.0.5:5555".parse().unwrap();
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let client = set_forwarding(&mut h, peer, "a.example", false, &trusted);
        assert_eq!(client.ip().to_string(), "198.51.100.2");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 198.51.100.2, 10.0.0.5");
        assert_eq!(h["x-real-ip"], "198.51.100.2");
    }

    #[test]
    fn only_websocket_upgrades_pass() {
        let mut h = headers(&[
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
            ("connection", "Upgrade, HTTP2-Settings, keep-alive"),
        ]);
        assert!(!only_websocket_upgrades(&mut h));
        assert!(!h.contains_key("upgrade") && !h.contains_key("http2-settings"));
        assert_eq!(h["connection"], "keep-alive");
        let mut h = headers(&[("upgrade", "websocket"), ("connection", "Upgrade")]);
        assert!(only_websocket_upgrades(&mut h));
        assert_eq!(h["upgrade"], "websocket");
    }
}
