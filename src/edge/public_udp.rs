//! Public UDP ingress: a UDP tunnel's public port. Each client address is a
//! flow with a stream of its own to the agent, counted like a TCP
//! connection, and ended after `FLOW_IDLE` without a datagram either way.
//! Its datagrams travel as QUIC datagrams when the agent's connection is
//! QUIC (and the agent takes them), tagged with the flow's id; otherwise on
//! the stream, each behind its 2-byte length. A datagram larger than the
//! QUIC path carries is dropped and counted, never split.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_transports::{Connection, ListenerKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::context::EdgeContext;
use super::error_frame::{error, from_core};
use super::public_port::Public;
use super::udp_flows::{Activity, DatagramFlows, FlowEnd, NEXT_FLOW};
use crate::actors::CoreError;
use crate::domain::{DomainError, Key, OpenTunnel, PortRequest, Tunnel, TunnelCommand};
use crate::metric_catalog;
use crate::protocol::{write_frame, ErrorFrame, StreamHeader, TunnelRequest};

/// A flow with no datagram either way for this long is over.
pub const FLOW_IDLE: Duration = Duration::from_secs(60);
/// Datagrams of one flow waiting for the agent's stream; past it they are
/// dropped, as a full socket buffer drops them.
const FLOW_QUEUE: usize = 256;

fn open_request(
    ctx: &EdgeContext,
    request: &TunnelRequest,
    transport: TransportKind,
    port: u16,
) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Udp,
        name: None,
        port: PortRequest::Exact {
            port,
            from: ctx.settings.udp_ports.0,
            to: ctx.settings.udp_ports.1,
        },
        transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
        pool: None,
    }
}

/// Opens (or takes back) a UDP tunnel on the port asked for, or on any free
/// one of `--udp-ports`, and binds it.
pub(super) async fn open(
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    transport: TransportKind,
) -> Result<(Tunnel, UdpSocket), ErrorFrame> {
    if let Some(port) = request.port {
        let tunnel = ctx
            .core
            .open_tunnel(&key.id, open_request(ctx, request, transport, port))
            .await
            .map_err(from_core)?;
        ctx.release_port(&tunnel.id);
        return match bind(ctx, port).await {
            Ok(socket) => Ok((tunnel, socket)),
            Err(e) => {
                let offline = TunnelCommand::GoOffline {
                    reason: "port unavailable".into(),
                    node: Some(ctx.node.clone()),
                };
                let _ = ctx.core.tunnel_command(&tunnel.id, offline).await;
                Err(error(
                    "port_unavailable",
                    format!("cannot bind UDP port {port}: {e}"),
                ))
            }
        };
    }
    let (from, to) = ctx.settings.udp_ports;
    let held = ctx.core.directory().await.map_err(from_core)?.udp_ports;
    for port in (from..=to).filter(|p| !held.contains_key(p)) {
        let Ok(socket) = UdpSocket::bind(SocketAddr::new(ctx.settings.public_host, port)).await
        else {
            continue;
        };
        match ctx
            .core
            .open_tunnel(&key.id, open_request(ctx, request, transport, port))
            .await
        {
            Ok(tunnel) => return Ok((tunnel, socket)),
            Err(CoreError::Domain(DomainError::Conflict(_))) => continue,
            Err(e) => return Err(from_core(e)),
        }
    }
    Err(error(
        "conflict",
        format!("no free public UDP port in {from}-{to}"),
    ))
}

/// Binds a public UDP port, retrying briefly while a previous session lets go of it.
async fn bind(ctx: &EdgeContext, port: u16) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(ctx.settings.public_host, port);
    let mut last = None;
    for _ in 0..20 {
        match UdpSocket::bind(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}

/// Receives the port's datagrams and hands each to its client's flow,
/// starting a flow (a stream to the agent) for a new client address; its
/// datagrams go as QUIC datagrams when `datagrams` is given.
pub(super) async fn serve<C: Connection>(
    socket: UdpSocket,
    conn: Arc<C>,
    public: Public,
    datagrams: Option<Arc<DatagramFlows>>,
) {
    let socket = Arc::new(socket);
    let public = Arc::new(public);
    let reached = socket.local_addr().ok().map(|a| a.to_string());
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let (ended, mut gone) = mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            Some(peer) = gone.recv() => {
                flows.remove(&peer);
                continue;
            }
            got = socket.recv_from(&mut buf) => match got {
                Ok(got) => got,
                Err(_) => continue, // an ICMP error from an earlier send
            },
        };
        let mut datagram = buf[..n].to_vec();
        if let Some(flow) = flows.get(&peer) {
            match flow.try_send(datagram) {
                // Full: dropped, as a full socket buffer drops it.
                Ok(()) | Err(TrySendError::Full(_)) => continue,
                // The flow just ended: this datagram starts a new one.
                Err(TrySendError::Closed(d)) => {
                    flows.remove(&peer);
                    datagram = d;
                }
            }
        }
        let Some(slot) = public
            .connections
            .enter(&public.tenant, ListenerKind::PublicUdp)
        else {
            continue;
        };
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        let _ = tx.try_send(datagram);
        flows.insert(peer, tx);
        let flow = Flow {
            peer,
            reached: reached.clone(),
            socket: socket.clone(),
            public: public.clone(),
        };
        let (conn, ended, datagrams) = (conn.clone(), ended.clone(), datagrams.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match datagrams {
                Some(link) => flow.run_datagrams(conn.as_ref(), rx, &link).await,
                None => flow.run(conn.as_ref(), rx).await,
            }
            let _ = ended.send(peer);
        });
    }
}

/// One client address's datagrams, both ways.
struct Flow {
    peer: SocketAddr,
    reached: Option<String>,
    socket: Arc<UdpSocket>,
    public: Arc<Public>,
}

impl Flow {
    /// Opens the flow's stream, its header naming the flow's id when its
    /// datagrams go as QUIC datagrams.
    async fn open<C: Connection>(&self, conn: &C, flow: Option<u32>) -> Option<C::Stream> {
        let mut stream = conn.open_stream().await.ok()?;
        let header = StreamHeader {
            tunnel: self.public.tunnel.clone(),
            peer: self.peer.to_string(),
            public: self.reached.clone(),
            flow,
        };
        write_frame(&mut stream, &header).await.ok()?;
        let meter = &self.public.meter;
        meter.connections.fetch_add(1, Ordering::Relaxed);
        meter.active.fetch_add(1, Ordering::Relaxed);
        Some(stream)
    }

    /// The flow's datagrams as QUIC datagrams, each behind the flow's id;
    /// the stream only marks the flow's life (the agent ends it by closing).
    async fn run_datagrams<C: Connection>(
        self,
        conn: &C,
        mut datagrams: mpsc::Receiver<Vec<u8>>,
        link: &DatagramFlows,
    ) {
        let id = NEXT_FLOW.fetch_add(1, Ordering::Relaxed);
        let Some(stream) = self.open(conn, Some(id)).await else {
            return;
        };
        let meter = self.public.meter.clone();
        let activity = Arc::new(Activity::new());
        let end = FlowEnd {
            socket: self.socket.clone(),
            peer: self.peer,
            meter: meter.clone(),
            activity: activity.clone(),
        };
        link.set(id, Some(Arc::new(end)));
        let (mut from_agent, mut to_agent) = tokio::io::split(stream);
        // The first datagram on the stream, framed: it must not arrive
        // before the agent knows the flow's id.
        if let Some(first) = datagrams.recv().await {
            activity.touch();
            let framed = [&(first.len() as u16).to_be_bytes()[..], &first].concat();
            if to_agent.write_all(&framed).await.is_err() || to_agent.flush().await.is_err() {
                link.set(id, None);
                meter.active.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            meter
                .bytes_in
                .fetch_add(first.len() as u64, Ordering::Relaxed);
            meter.datagrams.fetch_add(1, Ordering::Relaxed);
        }
        let outbound = async {
            loop {
                let wait = FLOW_IDLE.saturating_sub(activity.idle_for());
                match tokio::time::timeout(wait, datagrams.recv()).await {
                    Ok(Some(d)) => {
                        activity.touch();
                        let fits = conn
                            .max_datagram_size()
                            .is_some_and(|max| d.len() + 4 <= max);
                        if !fits {
                            metrics::counter!(metric_catalog::UDP_DATAGRAMS_DROPPED.name)
                                .increment(1);
                            continue;
                        }
                        let mut tagged = Vec::with_capacity(d.len() + 4);
                        tagged.extend_from_slice(&id.to_be_bytes());
                        tagged.extend_from_slice(&d);
                        if conn.send_datagram(tagged.into()).is_err() {
                            return;
                        }
                        meter.bytes_in.fetch_add(d.len() as u64, Ordering::Relaxed);
                        meter.datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => return,
                    Err(_) if activity.idle_for() >= FLOW_IDLE => return,
                    Err(_) => {}
                }
            }
        };
        // The agent's end of the stream: nothing comes on it but its end.
        let closed = async {
            let mut sink = [0u8; 64];
            while matches!(from_agent.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            _ = outbound => {}
            _ = closed => {}
        }
        link.set(id, None);
        let _ = to_agent.shutdown().await;
        meter.active.fetch_sub(1, Ordering::Relaxed);
        meter.record_late(&self.public.core, &self.public.tunnel);
    }

    async fn run<C: Connection>(self, conn: &C, mut datagrams: mpsc::Receiver<Vec<u8>>) {
        let Some(stream) = self.open(conn, None).await else {
            return;
        };
        let meter = &self.public.meter;
        let activity = Activity::new();
        let touch = || activity.touch();
        let idle_for = || activity.idle_for();
        let (mut from_agent, mut to_agent) = tokio::io::split(stream);
        let outbound = async {
            loop {
                let wait = FLOW_IDLE.saturating_sub(idle_for());
                match tokio::time::timeout(wait, datagrams.recv()).await {
                    Ok(Some(d)) => {
                        touch();
                        let framed = [&(d.len() as u16).to_be_bytes()[..], &d].concat();
                        let sent = to_agent.write_all(&framed).await;
                        if sent.is_err() || to_agent.flush().await.is_err() {
                            return;
                        }
                        meter.bytes_in.fetch_add(d.len() as u64, Ordering::Relaxed);
                        meter.datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => return,
                    // Quiet this way: over only if quiet the other way too.
                    Err(_) if idle_for() >= FLOW_IDLE => return,
                    Err(_) => {}
                }
            }
        };
        let inbound = async {
            let mut d = vec![0u8; 65_535];
            loop {
                let Ok(len) = from_agent.read_u16().await else {
                    return;
                };
                let d = &mut d[..len as usize];
                if from_agent.read_exact(d).await.is_err() {
                    return;
                }
                touch();
                if self.socket.send_to(d, self.peer).await.is_ok() {
                    meter.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
                    meter.datagrams.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        tokio::select! {
            _ = outbound => {}
            _ = inbound => {}
        }
        let _ = to_agent.shutdown().await;
        meter.active.fetch_sub(1, Ordering::Relaxed);
        meter.record_late(&self.public.core, &self.public.tunnel);
    }
}
