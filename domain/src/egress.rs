//! Egress policy: which addresses the edge may connect to on a tenant's
//! behalf (gateway upstream URLs, their health checks). Only public
//! addresses, unless the operator opened a network with `--egress-allow`;
//! never the edge's own listeners. The policy judges resolved addresses:
//! callers resolve a name, check every address it gave, and connect to the
//! address they checked, so a name that later resolves elsewhere (DNS
//! rebinding) is judged again on its next use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressRefusal {
    /// The address is not public (loopback, private, link-local, …).
    #[error("{addr} is a {class} address; the edge connects only to public addresses (an operator can open a network with --egress-allow)")]
    NotPublic {
        /// The address as given.
        addr: IpAddr,
        /// What kind of address it is.
        class: &'static str,
    },
    /// The address is one of the edge's own listeners.
    #[error("{0} is one of this edge's own listeners")]
    OwnListener(SocketAddr),
}

/// Which addresses the edge may connect to for a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Networks the operator opened on purpose.
    allow: Vec<IpNet>,
    /// The edge's own listeners, as an address and a range of ports (an
    /// unspecified IP stands for every address the edge might be reached on).
    own: Vec<(IpAddr, u16, u16)>,
}

impl EgressPolicy {
    /// Public addresses, plus the `allow`ed networks.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow,
            own: Vec::new(),
        }
    }

    /// The same policy, refusing these listeners of the edge's own even where
    /// a network allowed them.
    pub fn with_own_listeners(mut self, own: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.own
            .extend(own.into_iter().map(|a| (a.ip(), a.port(), a.port())));
        self
    }

    /// The same policy, refusing ports `from..=to` on `host` (the public TCP
    /// ports the edge binds for tunnels).
    pub fn with_own_ports(mut self, host: IpAddr, from: u16, to: u16) -> Self {
        self.own.push((host, from, to));
        self
    }

    /// The networks the operator opened.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether the edge may connect to `addr` for a tenant.
    pub fn check(&self, addr: SocketAddr) -> Result<(), EgressRefusal> {
        let ip = addr.ip();
        let canonical = canonical(ip);
        if self.is_own(canonical, addr.port()) {
            return Err(EgressRefusal::OwnListener(addr));
        }
        let Some(class) = class_of(canonical).or_else(|| class_of(ip)) else {
            return Ok(());
        };
        if self
            .allow
            .iter()
            .any(|net| net.contains(&canonical) || net.contains(&ip))
        {
            return Ok(());
        }
        Err(EgressRefusal::NotPublic { addr: ip, class })
    }

    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|&(own, from, to)| {
            (from..=to).contains(&port)
                && (canonical(own) == ip
                    // A listener on every address answers on loopback, on
                    // the unspecified address, and on whatever private
                    // network the operator allowed.
                    || (own.is_unspecified()
                        && (ip.is_loopback()
                            || ip.is_unspecified()
                            || self.allow.iter().any(|net| net.contains(&ip)))))
        })
    }
}

/// The IPv4 address an IPv6 address stands for, where it embeds one:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`); else the address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let s = v6.segments();
    let o = v6.octets();
    let v4 = |a: usize| IpAddr::V4(Ipv4Addr::new(o[a], o[a + 1], o[a + 2], o[a + 3]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => v4(12),
        // `::` and `::1` are IPv6's own; anything else in ::/96 is compatible.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => v4(12),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => v4(12),
        [0x2002, ..] => v4(2),
        _ => ip,
    }
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn class_of(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => class_v6(v6),
    }
}

fn class_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        (169, 254, _) => "link-local",
        (100, b, _) if (64..128).contains(&b) => "shared (CGNAT)",
        (192, 0, 0) => "protocol-assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        _ if ip == Ipv4Addr::BROADCAST => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn class_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        [h, ..] if h & 0xfe00 == 0xfc00 => "unique-local",
        [h, ..] if h & 0xffc0 == 0xfe80 => "link-local",
        [h, ..] if h & 0xffc0 == 0xfec0 => "site-local",
        [h, ..] if h & 0xff00 == 0xff00 => "multicast",
        // Teredo hides the client's IPv4 address; nothing public needs it.
        [0x2001, 0, ..] => "Teredo",
        [0x2001, 0x0db8, ..] => "documentation",
        [0x0100, 0, 0, 0, ..] => "discard",
        // Embedded IPv4 spellings are judged by the address they embed
        // (`canonical`); one that embeds a public address is public.
        _ => return None,
    })
}

/// The IP address a URL's host names, read the way C's `inet_aton` reads
/// it (so `2130706433`, `0x7f.1` and `0177.0.0.1` are all 127.0.0.1), or a
/// bracketed IPv6 literal; `None` for a host name.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse().ok();
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<u64> = host.split('.').map(number).collect::<Option<Vec<u64>>>()?;
    let value = match parts.as_slice() {
        [a] => *a,
        [a, b] if *a < 256 && *b < 1 << 24 => a << 24 | b,
        [a, b, c] if *a < 256 && *b < 256 && *c < 1 << 16 => a << 24 | b << 16 | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|x| **x < 256) => a << 24 | b << 16 | c << 8 | d,
        _ => return None,
    };
    u32::try_from(value)
        .ok()
        .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
}

/// One part of an `inet_aton` address: decimal, `0x` hex or `0` octal.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() || part.len() > 12 {
        return None;
    }
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        return if hex.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(hex, 16).ok()
        };
    }
    if part.len() > 1 && part.starts_with('0') {
        return u64::from_str_radix(&part[1..], 8).ok();
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_pass_and_every_other_kind_is_refused() {
        let p = EgressPolicy::default();
        for ok in ["93.184.215.14:80", "[2606:4700::1111]:443", "8.8.8.8:53"] {
            assert_eq!(p.check(addr(ok)), Ok(()), "{ok}");
        }
        for (bad, class) in [
            ("127.0.0.1:80", "loopback"),
            ("127.8.9.10:80", "loopback"),
            ("0.0.0.0:80", "unspecified"),
            ("10.1.2.3:80", "private"),
            ("172.31.0.1:80", "private"),
            ("192.168.1.1:80", "private"),
            ("169.254.169.254:80", "link-local"),
            ("100.100.100.200:80", "shared (CGNAT)"),
            ("224.0.0.1:80", "multicast"),
            ("255.255.255.255:80", "broadcast"),
            ("[::1]:80", "loopback"),
            ("[::]:80", "unspecified"),
            ("[fd00::1]:80", "unique-local"),
            ("[fe80::1]:80", "link-local"),
            ("[ff02::1]:80", "multicast"),
            ("[::ffff:127.0.0.1]:80", "loopback"),
            ("[::ffff:169.254.169.254]:80", "link-local"),
            ("[::127.0.0.1]:80", "loopback"),
            ("[64:ff9b::a9fe:a9fe]:80", "link-local"),
            ("[2002:7f00:1::]:80", "loopback"),
            ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]:80", "Teredo"),
        ] {
            match p.check(addr(bad)) {
                Err(EgressRefusal::NotPublic { class: c, .. }) => assert_eq!(c, class, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_allowed_network_opens_its_addresses_in_every_spelling() {
        let p = EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(p.check(addr("127.0.0.1:8080")), Ok(()));
        assert_eq!(p.check(addr("[::ffff:127.0.0.1]:8080")), Ok(()));
        assert!(p.check(addr("10.0.0.1:8080")).is_err());
    }

    #[test]
    fn own_listeners_stay_refused_even_in_an_allowed_network() {
        let p = EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
            .with_own_listeners([addr("127.0.0.1:7000"), addr("0.0.0.0:7001")]);
        assert_eq!(
            p.check(addr("127.0.0.1:7000")),
            Err(EgressRefusal::OwnListener(addr("127.0.0.1:7000")))
        );
        assert!(p.check(addr("[::ffff:127.0.0.1]:7000")).is_err());
        assert!(p.check(addr("127.0.0.2:7001")).is_err());
        assert_eq!(p.check(addr("127.0.0.1:7002")), Ok(()));
        let p = p.with_own_ports("127.0.0.1".parse().unwrap(), 23000, 23050);
        assert!(p.check(addr("127.0.0.1:23010")).is_err());
        assert_eq!(p.check(addr("127.0.0.1:23051")), Ok(()));
    }

    #[test]
    fn legacy_spellings_of_addresses_are_read_as_the_address_they_are() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for s in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
        ] {
            assert_eq!(literal_ip(s), lo, "{s}");
        }
        assert_eq!(literal_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal_ip("example.com"), None);
        assert_eq!(literal_ip("1.2.3.4.5"), None);
        assert_eq!(literal_ip("4294967296"), None);
    }
}
