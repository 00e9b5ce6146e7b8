//! Where the public reaches a tunnel: `http(s)://HOST[:PORT]` for an HTTP
//! host (the port left out when it is the scheme's own), `tcp://HOST:PORT`
//! for a TCP tunnel's port on the edge's advertised host.

/// How an edge is reached from outside, as its public addresses are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddresses {
    /// The host name shown in public addresses.
    pub advertise: String,
    /// The public HTTP port, when the edge serves HTTP tunnels.
    pub http_port: Option<u16>,
    /// Whether the public HTTP port speaks TLS.
    pub https: bool,
}

impl PublicAddresses {
    /// The public URL of an HTTP host.
    pub fn url(&self, host: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match (self.http_port, self.https) {
            (Some(443), true) | (Some(80), false) | (None, _) => format!("{scheme}://{host}"),
            (Some(port), _) => format!("{scheme}://{host}:{port}"),
        }
    }

    /// The public address of a TCP tunnel's `port`.
    pub fn tcp(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.advertise)
    }

    /// The public address of a UDP tunnel's `port`.
    pub fn udp(&self, port: u16) -> String {
        format!("udp://{}:{port}", self.advertise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(http_port: Option<u16>, https: bool) -> PublicAddresses {
        PublicAddresses {
            advertise: "edge.example".into(),
            http_port,
            https,
        }
    }

    #[test]
    fn the_schemes_own_port_is_left_out() {
        assert_eq!(at(Some(80), false).url("a.t"), "http://a.t");
        assert_eq!(at(Some(443), true).url("a.t"), "https://a.t");
        assert_eq!(at(Some(8080), false).url("a.t"), "http://a.t:8080");
        assert_eq!(at(Some(80), true).url("a.t"), "https://a.t:80");
        assert_eq!(at(None, false).tcp(20001), "tcp://edge.example:20001");
    }
}
