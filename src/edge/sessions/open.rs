//! Opening an agent's tunnels: a TCP tunnel's public port and accept loop,
//! an HTTP tunnel's host routes (its custom domain once verified) and access rules.

use std::sync::Arc;

use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::Connection;

use crate::domain::{Access, SignInRule};
use crate::domain::{DomainStatus, Key, OpenTunnel, PortRequest, Tunnel, TunnelCommand};
use crate::edge::context::{EdgeContext, Load, Route, Serve, SessionInfo};
use crate::edge::domains;
use crate::edge::error_frame::{error, from_core};
use crate::edge::meter::Meter;
use crate::edge::oidc::Provider;
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
    /// Whether the session serves it as one of its pool's members.
    pub(super) pool: bool,
}

/// The route of this session to `tunnel`.
fn member_route<C: Connection>(
    conn: &Arc<C>,
    tunnel: &Tunnel,
    session: &SessionInfo,
    meter: &Arc<Meter>,
    access: Access,
    sign_in: Option<Arc<Provider>>,
    h2c: bool,
) -> Route {
    Route {
        tunnel: tunnel.id.clone(),
        tenant: tunnel.tenant.clone(),
        custom: false,
        opener: conn.clone(),
        meter: meter.clone(),
        access: Arc::new(access),
        sign_in,
        h2c,
        member: tunnel.pool.then(|| session.id.clone()),
        load: Arc::new(Load::default()),
    }
}

/// Records that the session serves `tunnel`: as one of its pool's
/// members, or taking it over.
fn serve_it(ctx: &EdgeContext, tunnel: &Tunnel, session: &SessionInfo, route: Route, serve: Serve) {
    match tunnel.pool {
        true => ctx.join(&tunnel.id, &session.id, route, serve),
        false => ctx.take_over(&tunnel.id, &session.id, route, serve),
    }
}

/// Opens a TCP tunnel: its port bound (unless a member of its pool here
/// serves it already), its public connections forwarded.
pub(super) async fn open_tcp<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &Arc<EdgeContext>,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
) -> Result<Opened, ErrorFrame> {
    let (tunnel, listener) =
        match request.port {
            Some(port) => open_exact(ctx, key, request, session, port).await?,
            None if request.pool => return Err(error(
                "invalid_request",
                "a TCP pool is named by its port: give the port (--remote-port) to open or join it",
            )),
            None => open_any(ctx, key, request, session).await?,
        };
    let port = tunnel
        .port
        .ok_or_else(|| error("internal", "the tunnel has no port"))?;
    let accept = listener.map(|listener| {
        tokio::spawn(accept_public(
            listener,
            ctx.clone(),
            tunnel.id.clone(),
            tunnel.tenant.clone(),
        ))
        .abort_handle()
    });
    let route = member_route(
        conn,
        &tunnel,
        session,
        meter,
        Access::default(),
        None,
        false,
    );
    serve_it(ctx, &tunnel, session, route, Serve::Port(accept));
    Ok(Opened {
        id: tunnel.id,
        public: ctx.settings.public_addresses().tcp(port),
        port: Some(port),
        aliases: Vec::new(),
        notice: None,
        pool: tunnel.pool,
    })
}

/// Opens a UDP tunnel: its port bound, each client address's datagrams a
/// flow to the agent.
pub(super) async fn open_udp<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &Arc<EdgeContext>,
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
    if request.pool {
        return Err(error(
            "invalid_request",
            "pools are for HTTP and TCP tunnels",
        ));
    }
    let (tunnel, socket) = public_udp::open(ctx, key, request, session.transport).await?;
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
        session.datagrams.clone(),
    ));
    let route = member_route(
        conn,
        &tunnel,
        session,
        meter,
        Access::default(),
        None,
        false,
    );
    let port_loop = Serve::Port(Some(serve.abort_handle()));
    ctx.take_over(&tunnel.id, &session.id, route, port_loop);
    Ok(Opened {
        id: tunnel.id,
        public: ctx.settings.public_addresses().udp(port),
        port: Some(port),
        aliases: Vec::new(),
        notice: None,
        pool: false,
    })
}

/// Opens an HTTP tunnel: requests for NAME.<tunnel base>, and for its
/// custom domain once verified, are routed to this connection (to one of
/// its pool's members, for a pool).
pub(super) async fn open_http<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
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
    // The provider is read before the tunnel opens: a wrong issuer is
    // refused with why, and leaves nothing in the log.
    let (access, sign_in) = match &request.sign_in {
        None => (access, None),
        Some(wanted) => {
            let rule = SignInRule::parse(
                &wanted.issuer,
                &wanted.client_id,
                &wanted.allow_emails,
                &wanted.allow_domains,
            )
            .map_err(|e| error("invalid_request", e))?;
            let access =
                (access.with_sign_in(rule.clone())).map_err(|e| error("invalid_request", e))?;
            let provider = Provider::discover(wanted, rule, ctx.settings.egress.clone())
                .await
                .map_err(|e| error("invalid_request", e))?;
            (access, Some(Arc::new(provider)))
        }
    };
    let name = request
        .name
        .clone()
        .ok_or_else(|| error("invalid_request", "an HTTP tunnel needs a name"))?;
    let open = OpenTunnel {
        protocol: TunnelProtocol::Http,
        name: Some(name.clone()),
        port: PortRequest::None,
        transport: session.transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
        pool: session.joining(request, &access),
    };
    let tunnel = ctx
        .core
        .open_tunnel(&key.id, open)
        .await
        .map_err(from_core)?;
    let opened = tunnel.clone();
    let routed = route_http(
        conn, session, ctx, key, request, meter, tunnel, access, sign_in, name,
    )
    .await;
    if routed.is_err() {
        // Online in the log but served nowhere: the agent's other tunnels go
        // on, so this one must not stay online.
        ctx.abandon(&opened, &session.id, "the tunnel could not be opened")
            .await;
    }
    routed
}

/// Routes an HTTP tunnel opened in the log: its inspect mode, host, custom domain.
#[allow(clippy::too_many_arguments)]
async fn route_http<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    meter: &Arc<Meter>,
    tunnel: Tunnel,
    access: Access,
    sign_in: Option<Arc<Provider>>,
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
    let h2c = request.upstream == UpstreamProtocol::H2c;
    let route = member_route(conn, &tunnel, session, meter, access, sign_in, h2c);
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
        waiting,
    };
    serve_it(ctx, &tunnel, session, route, serve);
    let mut aliases = Vec::new();
    if let Some(d) = verified {
        ctx.domain_verified(&tunnel.id, &d);
        aliases.push(ctx.settings.url(&d.host));
    }
    Ok(Opened {
        pool: tunnel.pool,
        id: tunnel.id,
        public,
        port: None,
        aliases,
        notice,
    })
}
