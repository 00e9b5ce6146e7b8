//! Opening an agent's tunnels: a TCP tunnel's public port and accept loop,
//! an HTTP tunnel's host routes (its custom domain once verified) and access rules.

use std::sync::Arc;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_transports::Connection;

use crate::domain::Access;
use crate::domain::{DomainStatus, Key, OpenTunnel, PortRequest, Tunnel, TunnelCommand};
use crate::edge::context::{EdgeContext, Route, Serve};
use crate::edge::domains;
use crate::edge::error_frame::{error, from_core};
use crate::edge::meter::Meter;
use crate::edge::public_port::{accept_public, open_any, open_exact, Public};
use crate::edge::public_udp;
use crate::protocol::{ErrorFrame, TunnelRequest, UpstreamProtocol};

/// A tunnel opened for the agent.
pub(super) struct Opened {
    pub(super) id: String,
    pub(super) public: String,
    pub(super) port: Option<u16>,
    pub(super) aliases: Vec<String>,
    pub(super) notice: Option<String>,
}

/// Opens a TCP tunnel: its port bound, its public connections forwarded.
pub(super) async fn open_tcp<C: Connection>(
    conn: &Arc<C>,
    session: &str,
    transport: TransportKind,
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
) -> Result<Opened, ErrorFrame> {
    let (tunnel, listener) = match request.port {
        Some(port) => open_exact(ctx, key, request, transport, port).await?,
        None => open_any(ctx, key, request, transport).await?,
    };
    let port = tunnel
        .port
        .ok_or_else(|| error("internal", "the tunnel has no port"))?;
    let accept = tokio::spawn(accept_public(
        listener,
        conn.clone(),
        Public {
            tunnel: tunnel.id.clone(),
            tenant: key.tenant.clone(),
            meter: meter.clone(),
            core: ctx.core.clone(),
            connections: ctx.settings.connections.clone(),
        },
    ));
    ctx.take_over(&tunnel.id, session, Serve::Port(accept.abort_handle()));
    Ok(Opened {
        id: tunnel.id,
        public: ctx.settings.public_addresses().tcp(port),
        port: Some(port),
        aliases: Vec::new(),
        notice: None,
    })
}

/// Opens a UDP tunnel: its port bound, each client address's datagrams a
/// flow to the agent.
pub(super) async fn open_udp<C: Connection>(
    conn: &Arc<C>,
    session: &str,
    transport: TransportKind,
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
) -> Result<Opened, ErrorFrame> {
    if request.proxy_protocol.is_some() {
        return Err(error(
            "invalid_request",
            "the PROXY protocol is for TCP tunnels",
        ));
    }
    let (tunnel, socket) = public_udp::open(ctx, key, request, transport).await?;
    let port = tunnel
        .port
        .ok_or_else(|| error("internal", "the tunnel has no port"))?;
    let serve = tokio::spawn(public_udp::serve(
        socket,
        conn.clone(),
        Public {
            tunnel: tunnel.id.clone(),
            tenant: key.tenant.clone(),
            meter: meter.clone(),
            core: ctx.core.clone(),
            connections: ctx.settings.connections.clone(),
        },
    ));
    ctx.take_over(&tunnel.id, session, Serve::Port(serve.abort_handle()));
    Ok(Opened {
        id: tunnel.id,
        public: ctx.settings.public_addresses().udp(port),
        port: Some(port),
        aliases: Vec::new(),
        notice: None,
    })
}

/// Opens an HTTP tunnel: requests for NAME.<tunnel base>, and for its
/// custom domain once verified, are routed to this connection.
pub(super) async fn open_http<C: Connection>(
    conn: &Arc<C>,
    session: &str,
    transport: TransportKind,
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
) -> Result<Opened, ErrorFrame> {
    if ctx.settings.http_port.is_none() {
        return Err(error(
            "invalid_request",
            "this edge serves no HTTP tunnels (it runs without --http-listen)",
        ));
    }
    if request.proxy_protocol.is_some() {
        return Err(error(
            "invalid_request",
            "the PROXY protocol is for TCP tunnels; an HTTP tunnel's service finds the client in X-Forwarded-For and Forwarded",
        ));
    }
    let access = Access::parse(request.basic_auth.as_deref(), &request.allow)
        .map_err(|e| error("invalid_request", e))?;
    let name = request
        .name
        .clone()
        .ok_or_else(|| error("invalid_request", "an HTTP tunnel needs a name"))?;
    let open = OpenTunnel {
        protocol: TunnelProtocol::Http,
        name: Some(name.clone()),
        port: PortRequest::None,
        transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
        pool: None,
    };
    let tunnel = ctx
        .core
        .open_tunnel(&key.id, open)
        .await
        .map_err(from_core)?;
    let id = tunnel.id.clone();
    let routed = route_http(
        conn, session, ctx, key, request, meter, tunnel, access, name,
    )
    .await;
    if routed.is_err() {
        // Online in the log but served nowhere: the agent's other tunnels go
        // on, so this one must not stay online.
        let offline = TunnelCommand::GoOffline {
            reason: "the tunnel could not be opened".into(),
            node: Some(ctx.node.clone()),
        };
        let _ = ctx.core.tunnel_command(&id, offline).await;
    }
    routed
}

/// Routes an HTTP tunnel opened in the log: its inspect mode, host, custom domain.
#[allow(clippy::too_many_arguments)]
async fn route_http<C: Connection>(
    conn: &Arc<C>,
    session: &str,
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
    tunnel: Tunnel,
    access: Access,
    name: String,
) -> Result<Opened, ErrorFrame> {
    if let Some(mode) = request.inspect.filter(|m| *m != tunnel.inspect) {
        ctx.core
            .tunnel_command(&tunnel.id, TunnelCommand::SetInspect(mode))
            .await
            .map_err(from_core)?;
        // Requests read the mode from the projections: in force before the welcome.
        let head = ctx.core.log().head().seq;
        ctx.core
            .projections()
            .wait_for(head)
            .await
            .map_err(from_core)?;
    }
    let tenant = ctx.core.tenant(&tunnel.tenant).await.map_err(from_core)?;
    let host = format!("{name}.{}", tenant.tunnel_base);
    let route = Route {
        tunnel: tunnel.id.clone(),
        tenant: tunnel.tenant.clone(),
        custom: false,
        opener: conn.clone(),
        meter: meter.clone(),
        access: Arc::new(access),
        h2c: request.upstream == UpstreamProtocol::H2c,
    };
    let (mut verified, mut notice, mut waiting) = (None, None, Vec::new());
    if let Some(wanted) = &request.domain {
        let domain = domains::ensure(ctx, key, wanted).await?;
        if domain.status == DomainStatus::Verified {
            verified = Some(domain);
        } else {
            notice = Some(domains::waiting_notice(ctx, &domain));
            waiting.push(domain);
        }
    }
    let public = ctx.settings.url(&host);
    let serve = Serve::Http {
        hosts: vec![host],
        route,
        waiting,
    };
    ctx.take_over(&tunnel.id, session, serve);
    let mut aliases = Vec::new();
    if let Some(d) = verified {
        ctx.domain_verified(&tunnel.id, &d);
        aliases.push(ctx.settings.url(&d.host));
    }
    Ok(Opened {
        id: tunnel.id,
        public,
        port: None,
        aliases,
        notice,
    })
}
