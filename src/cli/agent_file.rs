//! `beamd start`'s file: how to reach the edge, then one `[tunnels.NAME]`
//! table per tunnel, each with the options `beamd http` and `beamd tcp` take.
//!
//! ```toml
//! edge = "edge.example.com:4443"
//! token_file = "agent.token"
//!
//! [tunnels.web]
//! type = "http"
//! local_port = 3000
//!
//! [tunnels.db]
//! type = "tcp"
//! local_port = 5432
//! remote_port = 25432
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use beamd_events::vocabulary::{InspectMode, TunnelProtocol};
use serde::Deserialize;
use toml::Spanned;

use super::file::{FileError, Secret, Source};
use crate::agent::{AgentConn, AgentTransport, HealthCheck, Probe};
use crate::domain::{Access, SignInRule};
use crate::protocol::{ProxyProtocol, SignInRequest, TunnelRequest, UpstreamProtocol};

/// The most tunnels one agent connection serves (the edge's limit too).
const MAX_TUNNELS: usize = 16;

/// The file's keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    edge: Spanned<String>,
    #[serde(default)]
    transport: Option<TransportKey>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    token_env: Option<Spanned<String>>,
    #[serde(default)]
    tls: bool,
    local_host: Option<String>,
    fingerprint: Option<Spanned<String>>,
    ca: Option<Spanned<PathBuf>>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    max_retries: u32,
    tunnels: Option<Spanned<BTreeMap<Spanned<String>, RawTunnel>>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TransportKey {
    Auto,
    Quic,
    Ws,
    Tcp,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Http,
    Tcp,
    Udp,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum InspectKey {
    Off,
    Meta,
    Full,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum UpstreamKey {
    Http1,
    H2c,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    #[serde(rename = "type")]
    kind: Kind,
    local_port: u16,
    local_host: Option<String>,
    remote_port: Option<Spanned<u16>>,
    name: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    basic_auth: Option<Spanned<String>>,
    basic_auth_file: Option<Spanned<PathBuf>>,
    basic_auth_env: Option<Spanned<String>>,
    allow: Option<Spanned<Vec<String>>>,
    inspect: Option<Spanned<InspectKey>>,
    upstream: Option<Spanned<UpstreamKey>>,
    proxy_protocol: Option<Spanned<ProxyKey>>,
    pool: Option<Spanned<bool>>,
    health_check: Option<Spanned<String>>,
    health_interval: Option<Spanned<u64>>,
    oidc_issuer: Option<Spanned<String>>,
    oidc_client_id: Option<Spanned<String>>,
    oidc_client_secret: Option<Spanned<String>>,
    oidc_client_secret_file: Option<Spanned<PathBuf>>,
    oidc_client_secret_env: Option<Spanned<String>>,
    oidc_allow_email: Option<Spanned<Vec<String>>>,
    oidc_allow_domain: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ProxyKey {
    V1,
    V2,
}

/// What an agent file says: the connection, and its tunnels tagged with their table names.
pub struct AgentFile {
    /// How to reach and trust the edge.
    pub conn: AgentConn,
    /// The tunnels, in the file's order.
    pub tunnels: Vec<TunnelRequest>,
    /// The health checks of pool members, by tunnel tag.
    pub checks: BTreeMap<String, HealthCheck>,
}

/// The default agent file: `$XDG_CONFIG_HOME/beamd/beamd.toml`, else `~/.config/beamd/beamd.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("beamd").join("beamd.toml"))
}

/// Reads and checks an agent file; with `only` names, keeps just those tunnels.
pub fn load(path: &Path, only: &[String]) -> Result<AgentFile, FileError> {
    let source = Source::read(path)?;
    let raw: RawFile = source.parse()?;
    let token = source.secret(
        "token",
        Secret {
            value: raw.token,
            file: raw.token_file,
            env: raw.token_env,
        },
    )?;
    if token.is_none() && !raw.edge.get_ref().starts_with("beamd://") {
        let message =
            "no token: set token, token_file or token_env (or make edge a beamd:// share link)";
        return Err(source.error(message));
    }
    if let (Some(f), true) = (&raw.fingerprint, raw.ca.is_some() || raw.insecure) {
        let message = "fingerprint, ca and insecure are three ways to trust the edge: keep one";
        return Err(source.error_at(f.span(), message));
    }
    if let (Some(ca), true) = (&raw.ca, raw.insecure) {
        let message = "ca and insecure are two ways to trust the edge: keep one";
        return Err(source.error_at(ca.span(), message));
    }
    let local_host = raw.local_host.unwrap_or_else(|| "127.0.0.1".into());
    let Some(tables) = raw.tunnels else {
        return Err(source.error("no tunnels: add a [tunnels.NAME] table for each"));
    };
    let tables_span = tables.span();
    let tables = tables.into_inner();
    if tables.is_empty() || tables.len() > MAX_TUNNELS {
        let message = format!("give 1 to {MAX_TUNNELS} [tunnels.NAME] tables");
        return Err(source.error_at(tables_span, message));
    }
    for name in only {
        if !tables.keys().any(|k| k.get_ref() == name) {
            let known: Vec<&str> = tables.keys().map(|k| k.get_ref().as_str()).collect();
            let message = format!("no tunnel {name:?} (it has {})", known.join(", "));
            return Err(source.error(message));
        }
    }
    // In the file's order.
    let mut tables: Vec<_> = tables.into_iter().collect();
    tables.sort_by_key(|(tag, _)| tag.span().start);
    let mut tunnels = Vec::new();
    let mut checks = BTreeMap::new();
    for (tag, table) in tables {
        if only.is_empty() || only.contains(tag.get_ref()) {
            let name = tag.get_ref().clone();
            if let Some(check) = health_check(&source, &table)? {
                checks.insert(name, check);
            }
            tunnels.push(tunnel(&source, tag, table, &local_host)?);
        }
    }
    let conn = AgentConn {
        edge: raw.edge.into_inner(),
        transport: match raw.transport.unwrap_or(TransportKey::Quic) {
            TransportKey::Auto => AgentTransport::Auto,
            TransportKey::Quic => AgentTransport::Quic,
            TransportKey::Ws => AgentTransport::Ws,
            TransportKey::Tcp => AgentTransport::Tcp,
        },
        token,
        tls: raw.tls,
        local_host,
        fingerprint: raw.fingerprint.map(Spanned::into_inner),
        ca: raw.ca.map(|ca| source.resolve(ca.get_ref())),
        insecure: raw.insecure,
        max_retries: raw.max_retries,
    };
    Ok(AgentFile {
        conn,
        tunnels,
        checks,
    })
}

/// A tunnel's `health_check` (an HTTP tunnel's path, or `"connect"` for a
/// TCP tunnel) and `health_interval` (seconds, default 5): pool members only.
fn health_check(source: &Source, t: &RawTunnel) -> Result<Option<HealthCheck>, FileError> {
    let Some(check) = &t.health_check else {
        if let Some(i) = &t.health_interval {
            return Err(source.error_at(i.span(), "health_interval needs health_check"));
        }
        return Ok(None);
    };
    if !t.pool.as_ref().is_some_and(|p| *p.get_ref()) {
        return Err(source.error_at(
            check.span(),
            "health_check is for pool members: set pool = true",
        ));
    }
    let probe = match (t.kind, check.get_ref().as_str()) {
        (Kind::Http, path) if path.starts_with('/') && !path.contains(char::is_whitespace) => {
            Probe::Http(path.to_string())
        }
        (Kind::Http, _) => {
            return Err(source.error_at(
                check.span(),
                "an HTTP tunnel's health_check is a path: \"/healthz\"",
            ))
        }
        (Kind::Tcp, "connect") => Probe::Connect,
        (Kind::Tcp, _) => {
            return Err(source.error_at(check.span(), "a TCP tunnel's health_check is \"connect\""))
        }
        (Kind::Udp, _) => {
            return Err(source.error_at(
                check.span(),
                "health_check is for http and tcp tunnels; this one is not",
            ))
        }
    };
    let seconds = match &t.health_interval {
        Some(i) if !(1..=3600).contains(i.get_ref()) => {
            return Err(source.error_at(i.span(), "health_interval must be 1-3600 seconds"))
        }
        Some(i) => *i.get_ref(),
        None => 5,
    };
    Ok(Some(HealthCheck {
        probe,
        interval: std::time::Duration::from_secs(seconds),
    }))
}

/// One `[tunnels.NAME]` table as the request the agent sends.
fn tunnel(
    source: &Source,
    tag: Spanned<String>,
    t: RawTunnel,
    local_host: &str,
) -> Result<TunnelRequest, FileError> {
    let only_for = |span: std::ops::Range<usize>, key: &str, kind: &str| {
        source.error_at(
            span,
            format!("{key} is for {kind} tunnels; this one is not"),
        )
    };
    if t.kind == Kind::Http {
        if let Some(p) = &t.remote_port {
            return Err(only_for(p.span(), "remote_port", "tcp"));
        }
        if let Some(p) = &t.proxy_protocol {
            return Err(only_for(p.span(), "proxy_protocol", "tcp"));
        }
    } else {
        if let (Kind::Udp, Some(p)) = (t.kind, &t.proxy_protocol) {
            return Err(only_for(p.span(), "proxy_protocol", "tcp"));
        }
        if let (Kind::Udp, Some(p)) = (t.kind, &t.pool) {
            return Err(only_for(p.span(), "pool", "http and tcp"));
        }
        if let (Kind::Tcp, Some(p), None) = (t.kind, &t.pool, &t.remote_port) {
            if *p.get_ref() {
                let why = "a TCP pool is named by its port: pool = true needs remote_port";
                return Err(source.error_at(p.span(), why));
            }
        }
        let http_only = [
            ("name", t.name.as_ref().map(Spanned::span)),
            ("domain", t.domain.as_ref().map(Spanned::span)),
            ("basic_auth", t.basic_auth.as_ref().map(Spanned::span)),
            (
                "basic_auth_file",
                t.basic_auth_file.as_ref().map(Spanned::span),
            ),
            (
                "basic_auth_env",
                t.basic_auth_env.as_ref().map(Spanned::span),
            ),
            ("allow", t.allow.as_ref().map(Spanned::span)),
            ("inspect", t.inspect.as_ref().map(Spanned::span)),
            ("upstream", t.upstream.as_ref().map(Spanned::span)),
            ("oidc_issuer", t.oidc_issuer.as_ref().map(Spanned::span)),
            (
                "oidc_client_id",
                t.oidc_client_id.as_ref().map(Spanned::span),
            ),
            (
                "oidc_client_secret",
                t.oidc_client_secret.as_ref().map(Spanned::span),
            ),
            (
                "oidc_client_secret_file",
                t.oidc_client_secret_file.as_ref().map(Spanned::span),
            ),
            (
                "oidc_client_secret_env",
                t.oidc_client_secret_env.as_ref().map(Spanned::span),
            ),
            (
                "oidc_allow_email",
                t.oidc_allow_email.as_ref().map(Spanned::span),
            ),
            (
                "oidc_allow_domain",
                t.oidc_allow_domain.as_ref().map(Spanned::span),
            ),
        ];
        if let Some((key, Some(span))) = http_only.into_iter().find(|(_, s)| s.is_some()) {
            return Err(only_for(span, key, "http"));
        }
    }
    if t.local_port == 0 {
        let message = "local_port must be 1-65535";
        return Err(source.error_at(tag.span(), format!("{}: {message}", tag.get_ref())));
    }
    let basic_auth = source.secret(
        "basic_auth",
        Secret {
            value: t.basic_auth,
            file: t.basic_auth_file,
            env: t.basic_auth_env,
        },
    )?;
    let (allow_span, allow) = match t.allow {
        Some(a) => (Some(a.span()), a.into_inner()),
        None => (None, Vec::new()),
    };
    let access = match Access::parse(basic_auth.as_deref(), &allow) {
        Ok(access) => access,
        Err(why) => {
            let span = allow_span.unwrap_or_else(|| tag.span());
            return Err(source.error_at(span, why));
        }
    };
    let oidc = RawSignIn {
        issuer: t.oidc_issuer,
        client_id: t.oidc_client_id,
        secret: Secret {
            value: t.oidc_client_secret,
            file: t.oidc_client_secret_file,
            env: t.oidc_client_secret_env,
        },
        emails: t.oidc_allow_email,
        domains: t.oidc_allow_domain,
    };
    let sign_in = sign_in(source, &tag, oidc, access)?;
    let name = match (t.kind, t.name) {
        (Kind::Http, Some(name)) => Some(name.into_inner()),
        (Kind::Http, None) => Some(tag.get_ref().clone()),
        (Kind::Tcp | Kind::Udp, _) => None,
    };
    let host = t.local_host.as_deref().unwrap_or(local_host);
    Ok(TunnelRequest {
        protocol: match t.kind {
            Kind::Http => TunnelProtocol::Http,
            Kind::Tcp => TunnelProtocol::Tcp,
            Kind::Udp => TunnelProtocol::Udp,
        },
        local_addr: format!("{host}:{}", t.local_port),
        port: t.remote_port.map(Spanned::into_inner),
        name,
        domain: t.domain.map(Spanned::into_inner),
        basic_auth,
        allow,
        inspect: t.inspect.map(|m| match m.into_inner() {
            InspectKey::Off => InspectMode::Off,
            InspectKey::Meta => InspectMode::Meta,
            InspectKey::Full => InspectMode::Full,
        }),
        upstream: match t.upstream.map(Spanned::into_inner) {
            Some(UpstreamKey::H2c) => UpstreamProtocol::H2c,
            _ => UpstreamProtocol::Http1,
        },
        tag: Some(tag.into_inner()),
        proxy_protocol: t.proxy_protocol.map(|p| match p.into_inner() {
            ProxyKey::V1 => ProxyProtocol::V1,
            ProxyKey::V2 => ProxyProtocol::V2,
        }),
        pool: t.pool.is_some_and(|p| p.into_inner()),
        sign_in: sign_in.map(Box::new),
    })
}

/// A tunnel's `oidc_*` keys.
struct RawSignIn {
    issuer: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    secret: Secret,
    emails: Option<Spanned<Vec<String>>>,
    domains: Option<Spanned<Vec<String>>>,
}

/// A tunnel's `oidc_*` keys: all or none of issuer, client id and secret;
/// the allow lists only with them; checked as the edge will check them.
fn sign_in(
    source: &Source,
    tag: &Spanned<String>,
    raw: RawSignIn,
    access: Access,
) -> Result<Option<SignInRequest>, FileError> {
    let secret = source.secret("oidc_client_secret", raw.secret)?;
    let (emails, domains) = (raw.emails, raw.domains);
    let (issuer, client_id, secret) = match (raw.issuer, raw.client_id, secret) {
        (None, None, None) => {
            if let Some(span) =
                (emails.as_ref().map(Spanned::span)).or_else(|| domains.as_ref().map(Spanned::span))
            {
                let why = "oidc_allow_email and oidc_allow_domain need oidc_issuer";
                return Err(source.error_at(span, why));
            }
            return Ok(None);
        }
        (Some(issuer), Some(client_id), Some(secret)) => (issuer, client_id, secret),
        (issuer, _, _) => {
            let span = issuer.as_ref().map_or_else(|| tag.span(), Spanned::span);
            let why = "sign-in needs oidc_issuer, oidc_client_id and oidc_client_secret (or _file, _env) together";
            return Err(source.error_at(span, why));
        }
    };
    let allow_emails = emails.map(Spanned::into_inner).unwrap_or_default();
    let allow_domains = domains.map(Spanned::into_inner).unwrap_or_default();
    let rule = SignInRule::parse(
        issuer.get_ref(),
        client_id.get_ref(),
        &allow_emails,
        &allow_domains,
    )
    .map_err(|why| source.error_at(issuer.span(), why))?;
    access
        .with_sign_in(rule)
        .map_err(|why| source.error_at(issuer.span(), why))?;
    Ok(Some(SignInRequest {
        issuer: issuer.into_inner(),
        client_id: client_id.into_inner(),
        client_secret: secret,
        allow_emails,
        allow_domains,
    }))
}

/// The connection settings a reload would change, by their keys: these need a restart.
pub fn fixed_keys_changed(running: &AgentConn, read: &AgentConn) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let pairs = [
        ("edge", running.edge != read.edge),
        ("transport", running.transport != read.transport),
        ("token", running.token != read.token),
        ("tls", running.tls != read.tls),
        ("fingerprint", running.fingerprint != read.fingerprint),
        ("ca", running.ca != read.ca),
        ("insecure", running.insecure != read.insecure),
        ("max_retries", running.max_retries != read.max_retries),
    ];
    for (key, differs) in pairs {
        if differs {
            changed.push(key);
        }
    }
    changed
}
