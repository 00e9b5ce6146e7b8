//! The PROXY protocol header (HAProxy's, v1 text or v2 binary) an agent
//! sends its local service before a public connection's first byte, so that
//! the service sees the public client's address instead of the agent's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ppp::v2;

use crate::protocol::ProxyProtocol;

/// The header for a connection from `client` that reached the edge at
/// `reached` (unknown from an edge too old to say: the unspecified address).
/// Addresses of two families are both given as IPv6.
pub(super) fn header(
    version: ProxyProtocol,
    client: SocketAddr,
    reached: Option<SocketAddr>,
) -> Vec<u8> {
    let reached = reached.unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let (client, reached) = match (client, reached) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (client, reached)
        }
        _ => (as_v6(client), as_v6(reached)),
    };
    match version {
        ProxyProtocol::V1 => ppp::v1::Addresses::from((client, reached))
            .to_string()
            .into_bytes(),
        ProxyProtocol::V2 => v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (client, reached),
        )
        .build()
        .unwrap_or_default(),
    }
}

fn as_v6(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_carry_the_client() {
        let client: SocketAddr = "203.0.113.7:51234".parse().unwrap();
        let reached: SocketAddr = "192.0.2.1:20001".parse().unwrap();
        let v1 = header(ProxyProtocol::V1, client, Some(reached));
        assert_eq!(v1, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 20001\r\n");
        let v2 = header(ProxyProtocol::V2, client, Some(reached));
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).unwrap();
        assert_eq!(parsed.addresses, (client, reached).into());
        // Mixed families: both as IPv6.
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let mixed = header(ProxyProtocol::V1, client, Some(v6));
        assert_eq!(
            mixed,
            b"PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 51234 443\r\n"
        );
    }
}
