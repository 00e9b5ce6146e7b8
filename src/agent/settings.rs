//! What an agent is told to do: which edge to reach and how to trust it
//! (shared by `beamd tcp` and `beamd http`), and the tunnel each asks for.
//! The command line builds these; the agent never sees its flags.

use std::fmt;
use std::path::PathBuf;

use beamd_events::vocabulary::InspectMode;

use super::dial::AgentTransport;
use crate::protocol::UpstreamProtocol;

/// How an agent reaches and trusts the edge. Its `Debug` masks the token.
#[derive(Clone)]
pub struct AgentConn {
    /// The edge's agent address HOST:PORT, several edges' comma-separated
    /// (each optionally prefixed quic://, ws:// or tcp://), or a share link.
    pub edge: String,
    /// How to reach the edge.
    pub transport: AgentTransport,
    /// The agent token, tok_<id>.<secret> (else taken from the share link).
    pub token: Option<String>,
    /// TLS over ws and tcp (QUIC always has it).
    pub tls: bool,
    /// The host of the local service.
    pub local_host: String,
    /// Trust the edge whose certificate has this SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    /// Trust edges whose certificate chains to a CA in this PEM file.
    pub ca: Option<PathBuf>,
    /// Do not verify the edge at all (local testing only).
    pub insecure: bool,
    /// Give up after this many failed connection attempts in a row (0 = never).
    pub max_retries: u32,
}

impl fmt::Debug for AgentConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConn")
            .field("edge", &self.edge)
            .field("transport", &self.transport)
            .field("token", &self.token.as_ref().map(|_| "MASKED"))
            .field("tls", &self.tls)
            .field("local_host", &self.local_host)
            .field("fingerprint", &self.fingerprint)
            .field("ca", &self.ca)
            .field("insecure", &self.insecure)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// What `beamd tcp` exposes.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// The local port to expose.
    pub local_port: u16,
    /// The public port asked for (else any free one, then the same on every reconnect).
    pub remote_port: Option<u16>,
    /// The PROXY protocol header sent to the local service first, if any.
    pub proxy_protocol: Option<crate::protocol::ProxyProtocol>,
    /// Join the pool on the port instead of taking it over.
    pub pool: bool,
    /// Leave the pool while the local service fails this check.
    pub health: Option<super::HealthCheck>,
    /// How to reach the edge.
    pub conn: AgentConn,
}

/// What `beamd udp` exposes.
#[derive(Debug, Clone)]
pub struct UdpSettings {
    /// The local UDP port to expose.
    pub local_port: u16,
    /// The public UDP port asked for (else any free one, then the same on every reconnect).
    pub remote_port: Option<u16>,
    /// How to reach the edge.
    pub conn: AgentConn,
}

/// What `beamd http` exposes. Its `Debug` masks the basic-auth password.
#[derive(Clone)]
pub struct HttpSettings {
    /// The local HTTP port to expose.
    pub local_port: u16,
    /// The tunnel's name, served at NAME.<tunnel base> (else a random name).
    pub name: Option<String>,
    /// A custom domain to serve too.
    pub domain: Option<String>,
    /// HTTP basic auth USER:PASSWORD demanded of every public request.
    pub basic_auth: Option<String>,
    /// The networks whose clients are let in (none: everyone).
    pub allow: Vec<String>,
    /// What the inspector keeps of each request (none: the mode last set).
    pub inspect: Option<InspectMode>,
    /// What the local service speaks.
    pub upstream: UpstreamProtocol,
    /// Join the pool of the name instead of taking it over.
    pub pool: bool,
    /// Leave the pool while the local service fails this check.
    pub health: Option<super::HealthCheck>,
    /// Sign-in demanded at the edge (OpenID Connect).
    pub sign_in: Option<SignInSettings>,
    /// How to reach the edge.
    pub conn: AgentConn,
}

/// `--oidc-*` of `beamd http`: the client's secret is read from its file
/// when the agent starts.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The file holding the client's secret.
    pub secret_file: std::path::PathBuf,
    /// Email addresses let in.
    pub allow_emails: Vec<String>,
    /// Email domains let in.
    pub allow_domains: Vec<String>,
}

impl SignInSettings {
    /// What the agent asks the edge for, the secret read from its file
    /// (one line; surrounding whitespace dropped).
    pub fn request(self) -> anyhow::Result<crate::protocol::SignInRequest> {
        use anyhow::Context;
        let secret = std::fs::read_to_string(&self.secret_file).with_context(|| {
            format!(
                "cannot read --oidc-client-secret-file {}",
                self.secret_file.display()
            )
        })?;
        let secret = secret.trim();
        anyhow::ensure!(
            !secret.is_empty(),
            "--oidc-client-secret-file {} is empty",
            self.secret_file.display()
        );
        Ok(crate::protocol::SignInRequest {
            issuer: self.issuer,
            client_id: self.client_id,
            client_secret: secret.to_string(),
            allow_emails: self.allow_emails,
            allow_domains: self.allow_domains,
        })
    }
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("local_port", &self.local_port)
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("basic_auth", &self.basic_auth.as_ref().map(|_| "MASKED"))
            .field("allow", &self.allow)
            .field("inspect", &self.inspect)
            .field("upstream", &self.upstream)
            .field("sign_in", &self.sign_in)
            .field("conn", &self.conn)
            .finish()
    }
}
