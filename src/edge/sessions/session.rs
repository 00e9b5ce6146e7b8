//! One agent connection: hello, authentication, tunnels, forwarding of public
//! connections, traffic reports, limits, and cleanup when it ends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_transports::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::auth::authenticate;
use super::open::{open_http, open_tcp, open_udp};
use crate::domain::{DomainError, Key, TunnelCommand};
use crate::edge::context::{EdgeContext, SessionInfo};
use crate::edge::error_frame::error;
use crate::edge::meter::Meter;
use crate::metric_catalog;
use crate::protocol::{
    read_frame, write_frame, AgentFrame, AssignedTunnel, EdgeFrame, ErrorFrame, Hello,
    RefusedTunnel, TunnelRequest, PROTOCOL_VERSION,
};

/// How long an agent has to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A session whose agent sent nothing for this long is over.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long open public connections may run on after the edge is told to stop.
const DRAIN: Duration = Duration::from_secs(10);
/// The most tunnels one agent connection may ask for.
const MAX_TUNNELS: usize = 16;

/// A tunnel this session serves.
#[derive(Clone)]
struct Served {
    id: String,
    meter: Arc<Meter>,
    /// Whether the session serves it as one of its pool's members.
    pool: bool,
}

/// The tunnels a session serves: set by the hello, changed by `Open` and
/// `Close`, read by the traffic reporter in every window.
#[derive(Clone, Default)]
struct ServedSet(Arc<Mutex<Vec<Served>>>);

impl ServedSet {
    fn list(&self) -> Vec<Served> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    fn add(&self, served: Served) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(served);
    }
    fn remove(&self, id: &str) -> Option<Served> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = all.iter().position(|s| s.id == id)?;
        Some(all.remove(at))
    }
}

/// Runs one agent connection to its end.
pub async fn run<C: Connection>(conn: C, transport: TransportKind, ctx: Arc<EdgeContext>) {
    let conn = Arc::new(conn);
    let session = format!("ses_{:016x}", fastrand::u64(..));
    let Ok(Ok(mut control)) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_stream()).await
    else {
        tracing::debug!(%session, "no control stream within 10 s");
        conn.close();
        return;
    };
    let hello =
        match tokio::time::timeout(HELLO_TIMEOUT, read_frame::<AgentFrame>(&mut control)).await {
            Ok(Ok(AgentFrame::Hello(hello))) => Ok(hello),
            Ok(Ok(_)) => Err(error("unexpected_frame", "the first frame must be a hello")),
            Ok(Err(e)) => Err(error(e.code(), e.to_string())),
            Err(_) => Err(error("timeout", "no hello within 10 s")),
        };
    // Boxed: until a hello arrives, a connection (perhaps junk, perhaps one
    // of thousands) holds only this small future, not the whole session's.
    // UDP flows go as QUIC datagrams when both ends can.
    let takes = matches!(&hello, Ok(h) if h.udp_datagrams);
    let datagrams = (takes && conn.max_datagram_size().is_some()).then(Default::default);
    let info = SessionInfo {
        id: session,
        transport,
        peer: conn.peer_addr(),
        datagrams,
    };
    Box::pin(serve(conn, info, control, hello, ctx)).await;
}

/// The session after its hello: start, then serve until the end.
async fn serve<C: Connection>(
    conn: Arc<C>,
    info: SessionInfo,
    mut control: C::Stream,
    hello: Result<Hello, ErrorFrame>,
    ctx: Arc<EdgeContext>,
) {
    let session = info.id.clone();
    let started = match hello {
        Ok(hello) => start(&conn, &info, &ctx, hello).await,
        Err(e) => Err(e),
    };
    let (key, served) = match started {
        Ok((key, served, welcome)) => {
            if let Err(e) = write_frame(&mut control, &welcome).await {
                tracing::debug!(%session, "the welcome was not delivered: {e}");
                finish(&ctx, &session, &served.list()).await;
                conn.close();
                return;
            }
            (key, served)
        }
        Err(frame) => {
            tracing::debug!(%session, code = %frame.code, "refused: {}", frame.message);
            close(control, conn.as_ref(), Some(frame)).await;
            return;
        }
    };
    let _welcomed = SessionGauge::welcomed();
    let dispatch = (info.datagrams.clone()).map(|d| tokio::spawn(d.dispatch(conn.clone())));
    let (cutoff_tx, mut cutoff) = mpsc::channel::<ErrorFrame>(1);
    let (stop_reports, reports_stop) = oneshot::channel::<()>();
    let reporter = tokio::spawn(report(
        ctx.clone(),
        session.clone(),
        reports_stop,
        key.clone(),
        served.clone(),
        cutoff_tx,
    ));
    let shutdown = ctx.shutdown.clone();
    let last_word = loop {
        tokio::select! {
            biased;
            frame = tokio::time::timeout(SILENCE_TIMEOUT, read_frame::<AgentFrame>(&mut control)) => match frame {
                Ok(Ok(AgentFrame::Heartbeat)) => {
                    if write_frame(&mut control, &EdgeFrame::Heartbeat).await.is_err() { break None; }
                }
                Ok(Ok(AgentFrame::Hello(_))) => break Some(error("unexpected_frame", "hello was already said")),
                Ok(Ok(AgentFrame::Open(request))) => {
                    let reply = match open_more(&conn, &info, &ctx, &key, &request, &served).await {
                        Ok(assigned) => EdgeFrame::Opened(assigned),
                        Err(e) => EdgeFrame::TunnelRefused(refusal(&request, e)),
                    };
                    if write_frame(&mut control, &reply).await.is_err() { break None; }
                }
                Ok(Ok(AgentFrame::Close { tunnel })) => {
                    if let Some(gone) = served.remove(&tunnel) {
                        finish(&ctx, &session, &[gone]).await;
                    }
                    if write_frame(&mut control, &EdgeFrame::Closed { tunnel }).await.is_err() { break None; }
                }
                Ok(Err(crate::protocol::ProtocolError::Closed)) => break None,
                Ok(Err(e)) => break Some(error(e.code(), e.to_string())),
                Err(_) => break Some(error("timeout", "no heartbeat within 45 s")),
            },
            Some(frame) = cutoff.recv() => break Some(frame),
            // An agent opens its control stream and nothing else; left
            // unaccepted, its other streams would queue up with their data.
            opened = conn.accept_stream() => match opened {
                Ok(_) => break Some(error("unexpected_stream", "an agent opens only its control stream")),
                Err(_) => break None,
            },
            _ = shutdown.cancelled() => {
                drain(&ctx, &served.list()).await;
                break Some(error("shutting_down", "the edge is stopping"));
            }
        }
    };
    // Stopped between windows, never in the middle of one (its counts are taken by then).
    let _ = stop_reports.send(());
    let _ = reporter.await;
    finish(&ctx, &session, &served.list()).await;
    if let Some(d) = dispatch {
        d.abort();
    }
    close(control, conn.as_ref(), last_word).await;
}

/// Counts a welcomed session in `beamd_agent_sessions` until dropped.
struct SessionGauge;

impl SessionGauge {
    fn welcomed() -> Self {
        metrics::gauge!(metric_catalog::AGENT_SESSIONS.name).increment(1.0);
        SessionGauge
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        metrics::gauge!(metric_catalog::AGENT_SESSIONS.name).decrement(1.0);
    }
}

/// Stops taking public connections and lets the open ones finish, for a bounded time.
async fn drain(ctx: &EdgeContext, served: &[Served]) {
    for s in served {
        ctx.release_port(&s.id);
    }
    let open = || {
        served
            .iter()
            .map(|s| s.meter.active.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let _ = tokio::time::timeout(DRAIN, async {
        while open() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Ends a connection, telling the agent why first. The error frame is given a
/// moment to arrive: closing a QUIC connection at once would drop it.
async fn close<C: Connection>(mut control: C::Stream, conn: &C, last_word: Option<ErrorFrame>) {
    if let Some(frame) = last_word {
        if write_frame(&mut control, &EdgeFrame::Error(frame))
            .await
            .is_ok()
        {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut control).await;
            let mut sink = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut control, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    }
    conn.close();
}

/// Authenticates, opens the tunnels, binds their public ports and says
/// welcome. A tunnel that cannot open is refused alone while others open; a
/// hello none of whose tunnels opens is refused as a whole (so a lone
/// tunnel's refusal ends the connection, as it always has).
async fn start<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &Arc<EdgeContext>,
    hello: Hello,
) -> Result<(Key, ServedSet, EdgeFrame), ErrorFrame> {
    if hello.version != PROTOCOL_VERSION {
        return Err(error(
            "unsupported_version",
            format!(
                "this edge speaks protocol {PROTOCOL_VERSION}, the agent {}",
                hello.version
            ),
        ));
    }
    if hello.tunnels.is_empty() || hello.tunnels.len() > MAX_TUNNELS {
        return Err(error(
            "invalid_request",
            format!("ask for 1 to {MAX_TUNNELS} tunnels"),
        ));
    }
    if let Some(why) = ctx.settings.disk.short() {
        return Err(error("insufficient_storage", why));
    }
    let key = authenticate(&ctx.core, &hello.token).await?;
    let served = ServedSet::default();
    let mut assigned = Vec::new();
    let mut refused = Vec::new();
    for request in &hello.tunnels {
        match open_one(conn, session, ctx, &key, request).await {
            Ok((tunnel, s)) => {
                assigned.push(tunnel);
                served.add(s);
            }
            Err(e) => refused.push(refusal(request, e)),
        }
    }
    if assigned.is_empty() {
        let first = refused.remove(0).error;
        if refused.is_empty() {
            return Err(first);
        }
        let others = refused
            .iter()
            .map(|r| format!("{}: {}: {}", r.asked, r.error.code, r.error.message))
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!("{}; and {others}", first.message);
        return Err(error(&first.code, message));
    }
    let welcome = EdgeFrame::Welcome {
        session: session.id.clone(),
        node: ctx.node.clone(),
        tunnels: assigned,
        refused,
    };
    Ok((key, served, welcome))
}

/// Opens one tunnel of an `Open` frame, within the session's limits.
async fn open_more<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &Arc<EdgeContext>,
    key: &Key,
    request: &TunnelRequest,
    served: &ServedSet,
) -> Result<AssignedTunnel, ErrorFrame> {
    if served.len() >= MAX_TUNNELS {
        return Err(error(
            "invalid_request",
            format!("one connection serves at most {MAX_TUNNELS} tunnels"),
        ));
    }
    if let Some(why) = ctx.settings.disk.short() {
        return Err(error("insufficient_storage", why));
    }
    let (tunnel, s) = open_one(conn, session, ctx, key, request).await?;
    served.add(s);
    Ok(tunnel)
}

/// Opens one tunnel for the session.
async fn open_one<C: Connection>(
    conn: &Arc<C>,
    session: &SessionInfo,
    ctx: &Arc<EdgeContext>,
    key: &Key,
    request: &TunnelRequest,
) -> Result<(AssignedTunnel, Served), ErrorFrame> {
    // A pool member's windows name it, and the key its bytes count against.
    let meter = Arc::new(match request.pool {
        true => Meter::for_member(&session.id, &key.id),
        false => Meter::default(),
    });
    if request.sign_in.is_some() && request.protocol != TunnelProtocol::Http {
        // Never ignored: a TCP or UDP tunnel asked to sign people in would
        // otherwise be open to everyone.
        return Err(error(
            "invalid_request",
            "sign-in (OpenID Connect) is for HTTP tunnels",
        ));
    }
    let opened = match request.protocol {
        TunnelProtocol::Tcp => open_tcp(conn, session, ctx, key, request, &meter).await,
        TunnelProtocol::Udp => open_udp(conn, session, ctx, key, request, &meter).await,
        TunnelProtocol::Http => open_http(conn, session, ctx, key, request, &meter).await,
    }?;
    let assigned = AssignedTunnel {
        id: opened.id.clone(),
        protocol: request.protocol,
        public: opened.public,
        port: opened.port,
        local_addr: request.local_addr.clone(),
        aliases: opened.aliases,
        notice: opened.notice,
        tag: request.tag.clone(),
    };
    Ok((
        assigned,
        Served {
            id: opened.id,
            meter,
            pool: opened.pool,
        },
    ))
}

/// A tunnel's refusal, named as the agent asked for it.
fn refusal(request: &TunnelRequest, error: ErrorFrame) -> RefusedTunnel {
    RefusedTunnel {
        tag: request.tag.clone(),
        asked: request.asked(),
        error,
    }
}

/// Reports traffic once per window, and cuts the session off when its key
/// may no longer carry bytes (`Key::may_carry`: revoked, its byte limit or
/// its plan's bandwidth used up), checked in every window and at once when a
/// grant changes in the log; or when another session took one of its
/// tunnels over (here, or on another node).
async fn report(
    ctx: Arc<EdgeContext>,
    session: String,
    mut stop: oneshot::Receiver<()>,
    key: Key,
    served: ServedSet,
    cutoff: mpsc::Sender<ErrorFrame>,
) {
    let mut grants = ctx.core.projections().grant_changes();
    let mut watching = true;
    let mut tick = tokio::time::interval(ctx.settings.window);
    loop {
        let window = tokio::select! {
            biased;
            _ = &mut stop => return,
            changed = grants.recv(), if watching => {
                // Closed: the projector stopped (the edge is stopping), windows go on.
                watching = !matches!(changed, Err(broadcast::error::RecvError::Closed));
                false
            }
            _ = tick.tick() => true,
        };
        if window {
            let meters = served.list();
            for s in &meters {
                record(&ctx, &s.id, &s.meter).await;
            }
            if let Some(s) = meters.iter().find(|s| !ctx.serves_as(&s.id, &session)) {
                let message = format!("another agent with this token took tunnel {} over", s.id);
                let _ = cutoff.send(error("taken_over", message)).await;
                return;
            }
        }
        if let Err(refused) = grant(&ctx, &key) {
            let _ = cutoff
                .send(error(refused.code(), refused.to_string()))
                .await;
            return;
        }
    }
}

/// Whether `key` may carry more bytes now, as the log's projections say.
fn grant(ctx: &EdgeContext, key: &Key) -> Result<(), DomainError> {
    ctx.core.queries().grant(&key.id, ctx.core.now_ms())
}

/// Records a tunnel's traffic window and the requests captured since the
/// last call. Traffic that fails to be recorded stays in the meter for the
/// next window (`Meter::record`).
async fn record(ctx: &EdgeContext, id: &str, meter: &Meter) {
    match meter.record(&ctx.core, id).await {
        Ok(delta) => {
            let bytes = metric_catalog::TUNNEL_BYTES.name;
            metrics::counter!(bytes, metric_catalog::DIRECTION_IN).increment(delta.bytes_in);
            metrics::counter!(bytes, metric_catalog::DIRECTION_OUT).increment(delta.bytes_out);
            metrics::counter!(metric_catalog::TUNNEL_CONNECTIONS.name).increment(delta.connections);
        }
        Err(e) => {
            let kept = !e.may_have_happened();
            tracing::warn!(tunnel = %id, kept, "traffic window not recorded: {e}")
        }
    }
    let captured = meter.take_captured();
    if !captured.is_empty() && ctx.settings.disk.short().is_some() {
        metrics::counter!(metric_catalog::CAPTURES_DROPPED.name).increment(captured.len() as u64);
    } else if !captured.is_empty() {
        let cmd = TunnelCommand::CaptureRequests(captured.into());
        if let Err(e) = ctx.core.tunnel_command(id, cmd).await {
            tracing::warn!(tunnel = %id, "captured requests not recorded: {e}");
        }
    }
}

/// Records the last traffic and takes the session's tunnels offline (or
/// out of their pools).
async fn finish(ctx: &EdgeContext, session: &str, served: &[Served]) {
    for s in served {
        // Responses still streaming record their capture themselves after this.
        s.meter.close();
        record(ctx, &s.id, &s.meter).await;
        // A tunnel another session took over stays online.
        if ctx.leave(&s.id, session) {
            let cmd = match s.pool {
                true => TunnelCommand::Leave {
                    member: session.to_string(),
                    reason: "agent disconnected".into(),
                },
                false => TunnelCommand::GoOffline {
                    reason: "agent disconnected".into(),
                    node: Some(ctx.node.clone()),
                },
            };
            let _ = ctx.core.tunnel_command(&s.id, cmd).await;
        }
    }
}
