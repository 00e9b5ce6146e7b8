//! Connections the edge opens on a tenant's behalf (gateway upstream URLs
//! and their health checks): the host is resolved, every address it gives
//! is judged by the domain's `EgressPolicy`, and the connection goes to an
//! address that was judged, so a name cannot resolve to one address when it
//! is checked and to another when it is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use crate::dns::DnsVerifier;
use crate::domain::egress::{literal_ip, EgressPolicy, EgressRefusal};

/// How long a name's resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the edge does not connect.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The policy refuses an address the host names.
    #[error("{host} is refused: {refusal}")]
    Refused {
        /// The host as configured.
        host: String,
        /// Why.
        refusal: EgressRefusal,
    },
    /// The host name did not resolve.
    #[error("{host} does not resolve: {reason}")]
    Unresolved {
        /// The host as configured.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// The edge's egress: the operator's policy, the edge's own listeners (added
/// as they are bound), and the resolver tenant hosts are looked up with.
#[derive(Debug)]
pub struct Egress {
    allow: RwLock<Vec<IpNet>>,
    own: RwLock<Vec<SocketAddr>>,
    public_ports: Option<(IpAddr, u16, u16)>,
    dns: DnsVerifier,
    resolver: OnceCell<TokioResolver>,
}

impl Egress {
    /// Egress to public addresses and the `allow`ed networks, resolving
    /// names with `dns`'s name server.
    pub fn new(allow: Vec<IpNet>, dns: DnsVerifier) -> Self {
        Self {
            allow: RwLock::new(allow),
            own: RwLock::new(Vec::new()),
            public_ports: None,
            dns,
            resolver: OnceCell::new(),
        }
    }

    /// The same, refusing the public TCP tunnel ports `from..=to` on `host`.
    pub fn with_public_ports(mut self, host: IpAddr, from: u16, to: u16) -> Self {
        self.public_ports = Some((host, from, to));
        self
    }

    /// Records a listener of the edge's own, refused from now on.
    pub fn add_own(&self, addr: SocketAddr) {
        if let Ok(mut own) = self.own.write() {
            own.push(addr);
        }
    }

    /// Replaces the allowed networks (a reload): in force for the next connection.
    pub fn set_allow(&self, allow: Vec<IpNet>) {
        if let Ok(mut now) = self.allow.write() {
            *now = allow;
        }
    }

    /// The policy as it stands.
    pub fn policy(&self) -> EgressPolicy {
        let own = self.own.read().map(|o| o.clone()).unwrap_or_default();
        let allow = self.allow.read().map(|a| a.clone()).unwrap_or_default();
        let policy = EgressPolicy::new(allow).with_own_listeners(own);
        match self.public_ports {
            Some((host, from, to)) => policy.with_own_ports(host, from, to),
            None => policy,
        }
    }

    /// Every address `host` names, each allowed by the policy; refused as a
    /// whole when any one of them is not.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let policy = self.policy();
        let addrs = match literal_ip(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => self
                .lookup(host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        };
        for addr in &addrs {
            policy
                .check(*addr)
                .map_err(|refusal| EgressError::Refused {
                    host: host.to_string(),
                    refusal,
                })?;
        }
        Ok(addrs)
    }

    /// A connection to `host:port`, to an address the policy allows.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, EgressError> {
        let mut last = None;
        for addr in self.resolve(host, port).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(source) => last = Some(EgressError::Connect { addr, source }),
            }
        }
        Err(last.unwrap_or_else(|| EgressError::Unresolved {
            host: host.to_string(),
            reason: "no addresses".into(),
        }))
    }

    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, EgressError> {
        let unresolved = |reason: String| EgressError::Unresolved {
            host: host.to_string(),
            reason,
        };
        let resolver = self
            .resolver
            .get_or_try_init(|| async { self.dns.ip_resolver() })
            .await
            .map_err(unresolved)?;
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.lookup_ip(fqdn))
            .await
            .map_err(|_| unresolved(format!("no answer within {RESOLVE_TIMEOUT:?}")))?
            .map_err(|e| unresolved(e.to_string()))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        if ips.is_empty() {
            return Err(unresolved("no addresses".into()));
        }
        Ok(ips)
    }
}
