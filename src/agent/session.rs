//! One connection to an edge: connect, hello, welcome, then forward each
//! stream the edge opens to its tunnel's local service until the connection
//! drops, opening and closing tunnels when the wanted set changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::{Connection, Transport, TransportError};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::plan::{tag_of, Connected, Plan, FATAL};
use super::settings::AgentConn;
use super::udp::{relay_datagrams, DatagramLink, Flows};
use crate::protocol::{
    read_frame, write_frame, AgentFrame, AssignedTunnel, EdgeFrame, ErrorFrame, Hello,
    ProxyProtocol, RefusedTunnel, StreamHeader, Token, TunnelRequest, PROTOCOL_VERSION,
};
use crate::pump;

/// Why a connection attempt ended.
pub(super) enum Ended {
    /// The edge refused for good (bad token, limit, conflict): stop.
    Refused(String),
    /// The connection failed or dropped after a welcome: try again.
    Lost(String),
    /// No welcome on this transport (cannot connect, or no answer): try the
    /// next transport or edge.
    Unreachable(String),
}

const HEARTBEAT: Duration = Duration::from_secs(15);

/// A running agent: its connection options and how it names itself in output.
pub(super) struct Agent<'a> {
    pub args: &'a AgentConn,
    pub label: &'static str,
    /// Where the public address goes instead of stdout (benchmarks).
    pub announce: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// Where one tunnel's streams go.
#[derive(Clone)]
struct Route {
    /// The local service.
    local: String,
    /// The PROXY protocol header it is sent first, if any.
    proxy: Option<ProxyProtocol>,
    /// Whether the local service speaks UDP (each stream one client's datagrams).
    udp: bool,
}

/// Where each tunnel's streams go, by tunnel id.
type Routes = Arc<RwLock<HashMap<String, Route>>>;

/// How a connection ended, and whether it was welcomed first.
pub(super) struct Outcome {
    pub ended: Ended,
    pub welcomed: bool,
}

impl Outcome {
    pub(super) fn before_welcome(ended: Ended) -> Self {
        Outcome {
            ended,
            welcomed: false,
        }
    }
}

impl Agent<'_> {
    /// How a line about one tunnel starts: the command, and the tunnel's tag if it has one.
    fn who(&self, tag: &Option<String>) -> String {
        match tag {
            Some(tag) => format!("{}: {tag}", self.label),
            None => self.label.to_string(),
        }
    }

    /// One connection: hello, welcome, then serve streams (and open and close
    /// tunnels as `wants` changes) until it drops.
    pub(super) async fn attempt<T: Transport>(
        &self,
        transport: &T,
        edge: SocketAddr,
        plan: &mut Plan,
        wants: &mut Wants,
        connect_within: Option<Duration>,
    ) -> Outcome {
        let args = self.args;
        let connecting = transport.connect(edge);
        let connected = match connect_within {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Handshake(format!(
                        "no answer within {} s",
                        limit.as_secs()
                    )))
                }),
            None => connecting.await,
        };
        let conn = match connected {
            Ok(c) => Arc::new(c),
            Err(e) => return Outcome::before_welcome(Ended::Unreachable(e.to_string())),
        };
        let Ok(mut control) = conn.open_stream().await else {
            return Outcome::before_welcome(Ended::Unreachable(
                "cannot open the control stream".into(),
            ));
        };
        let hello = AgentFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: Token(args.token.clone().unwrap_or_default()),
            tunnels: plan.asks(),
            udp_datagrams: true,
        });
        if let Err(e) = write_frame(&mut control, &hello).await {
            return Outcome::before_welcome(Ended::Unreachable(e.to_string()));
        }
        let welcome = tokio::time::timeout(
            Duration::from_secs(15),
            read_frame::<EdgeFrame>(&mut control),
        )
        .await;
        let (assigned, refused) = match welcome {
            Ok(Ok(EdgeFrame::Welcome {
                tunnels, refused, ..
            })) => (tunnels, refused),
            Ok(Ok(EdgeFrame::Error(e))) => return Outcome::before_welcome(ended_by(e)),
            Ok(Ok(_)) => return Outcome::before_welcome(Ended::Unreachable("no welcome".into())),
            Ok(Err(e)) => return Outcome::before_welcome(Ended::Unreachable(e.to_string())),
            Err(_) => {
                return Outcome::before_welcome(Ended::Unreachable("no welcome within 15 s".into()))
            }
        };
        if assigned.is_empty() {
            return Outcome::before_welcome(Ended::Lost("the edge assigned no tunnel".into()));
        }
        let routes = Routes::default();
        let mut live = Connected::default();
        let (out, mut outgoing) = mpsc::channel::<AgentFrame>(64);
        for tunnel in &assigned {
            self.serving(tunnel, edge, transport.name(), plan, &mut live, &routes);
        }
        for refusal in &refused {
            if let Some(again) = self.refused(refusal, plan) {
                live.pending
                    .insert(tag_of(&again.tag).to_string(), again.clone());
                let _ = out.try_send(AgentFrame::Open(again));
            }
        }
        let flows = Arc::new(Flows::default());
        let datagrams = tokio::spawn(flows.clone().dispatch(conn.clone()));
        let streams = {
            let (conn, routes) = (conn.clone(), routes.clone());
            let link: Arc<dyn DatagramLink> = conn.clone();
            tokio::spawn(async move {
                while let Ok(stream) = conn.accept_stream().await {
                    let (link, flows) = (link.clone(), flows.clone());
                    tokio::spawn(forward(stream, routes.clone(), link, flows));
                }
            })
        };
        let (mut reader, mut writer) = tokio::io::split(control);
        // The one writer of the control stream: heartbeats, opens and closes.
        let writes = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                let frame = tokio::select! {
                    _ = tick.tick() => AgentFrame::Heartbeat,
                    frame = outgoing.recv() => match frame {
                        Some(frame) => frame,
                        None => return,
                    },
                };
                if write_frame(&mut writer, &frame).await.is_err() {
                    return;
                }
            }
        });
        let ended = loop {
            let frame = tokio::select! {
                frame = read_frame::<EdgeFrame>(&mut reader) => frame,
                Some(wanted) = wants.changed() => {
                    for frame in plan.replace(wanted, &mut live) {
                        let _ = out.send(frame).await;
                    }
                    continue;
                }
            };
            match frame {
                Ok(EdgeFrame::Heartbeat) => continue,
                Ok(EdgeFrame::Error(e)) => break ended_by(e),
                Ok(EdgeFrame::Welcome { .. }) => {
                    break Ended::Lost("unexpected second welcome".into())
                }
                Ok(EdgeFrame::Opened(tunnel)) => {
                    let tag = tag_of(&tunnel.tag).to_string();
                    let Some(asked) = live.pending.remove(&tag) else {
                        break Ended::Lost(format!("the edge opened {} unasked", tunnel.id));
                    };
                    if plan.still_wanted(&asked) {
                        self.serving(&tunnel, edge, transport.name(), plan, &mut live, &routes);
                    } else {
                        // Changed again while it was being opened.
                        let _ = out.send(AgentFrame::Close { tunnel: tunnel.id }).await;
                        if let Some(w) = plan.wanted(&tag).cloned() {
                            live.pending.insert(tag, w.clone());
                            let _ = out.send(AgentFrame::Open(w)).await;
                        }
                    }
                }
                Ok(EdgeFrame::TunnelRefused(refusal)) => {
                    live.pending.remove(tag_of(&refusal.tag));
                    if let Some(again) = self.refused(&refusal, plan) {
                        live.pending
                            .insert(tag_of(&again.tag).to_string(), again.clone());
                        let _ = out.send(AgentFrame::Open(again)).await;
                    }
                }
                Ok(EdgeFrame::Closed { tunnel }) => {
                    write_routes(&routes).remove(&tunnel);
                }
                Err(e) => break Ended::Lost(e.to_string()),
            }
        };
        writes.abort();
        streams.abort();
        datagrams.abort();
        conn.close();
        Outcome {
            ended,
            welcomed: true,
        }
    }

    /// A tunnel serves: route its streams, remember its port, say where it is.
    fn serving(
        &self,
        tunnel: &AssignedTunnel,
        edge: SocketAddr,
        over: &str,
        plan: &mut Plan,
        live: &mut Connected,
        routes: &Routes,
    ) {
        let tag = tag_of(&tunnel.tag).to_string();
        let Some(wanted) = plan.wanted(&tag).cloned() else {
            return;
        };
        let route = Route {
            local: tunnel.local_addr.clone(),
            proxy: wanted.proxy_protocol,
            udp: wanted.protocol == TunnelProtocol::Udp,
        };
        write_routes(routes).insert(tunnel.id.clone(), route);
        live.serving.insert(tag, (tunnel.id.clone(), wanted));
        plan.assigned(tunnel);
        if let Some(tx) = &self.announce {
            let _ = tx.send(tunnel.public.clone());
            return;
        }
        let who = self.who(&tunnel.tag);
        crate::say!(
            "{who}: tunnel {} -> {} ({}, over {over} to {edge})",
            tunnel.public,
            tunnel.local_addr,
            tunnel.id,
        );
        for alias in &tunnel.aliases {
            crate::say!("{who}: also at {alias}");
        }
        if let Some(notice) = &tunnel.notice {
            crate::say!("{who}: {notice}");
        }
    }

    /// Reports a tunnel's refusal; returns the request to ask again at once, if any.
    fn refused(&self, refusal: &RefusedTunnel, plan: &mut Plan) -> Option<TunnelRequest> {
        let again = plan.refused(refusal);
        let (who, e) = (self.who(&refusal.tag), &refusal.error);
        match &again {
            Some(_) => eprintln!(
                "{who}: the port it had is taken ({}); asking for any free one",
                e.message
            ),
            None => eprintln!(
                "{who}: the edge refused {}: {}: {}",
                refusal.asked, e.code, e.message
            ),
        }
        again
    }
}

/// How an error frame from the edge ends the connection.
fn ended_by(e: ErrorFrame) -> Ended {
    let why = format!("{}: {}", e.code, e.message);
    if FATAL.contains(&e.code.as_str()) {
        Ended::Refused(why)
    } else {
        Ended::Lost(why)
    }
}

fn write_routes(routes: &Routes) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Route>> {
    routes.write().unwrap_or_else(|p| p.into_inner())
}

/// Changes to the wanted tunnels (a reloaded config file), if the agent has a file.
pub(super) struct Wants(pub Option<mpsc::UnboundedReceiver<Vec<TunnelRequest>>>);

impl Wants {
    /// The next change; pending forever without a file.
    async fn changed(&mut self) -> Option<Vec<TunnelRequest>> {
        match &mut self.0 {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// The latest change made while no connection was up, if any.
    pub(super) fn latest(&mut self) -> Option<Vec<TunnelRequest>> {
        let rx = self.0.as_mut()?;
        let mut latest = None;
        while let Ok(w) = rx.try_recv() {
            latest = Some(w);
        }
        latest
    }

    /// Waits for a change (nothing is left to ask for until one comes).
    pub(super) async fn next(&mut self) -> Option<Vec<TunnelRequest>> {
        match &mut self.0 {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }
}

/// Forwards one stream the edge opened to its tunnel's local service.
async fn forward<S>(mut stream: S, routes: Routes, link: Arc<dyn DatagramLink>, flows: Arc<Flows>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + beamd_transports::PlainSocket + Unpin,
{
    let header = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<StreamHeader>(&mut stream),
    )
    .await;
    let Ok(Ok(header)) = header else {
        return;
    };
    let route = routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&header.tunnel)
        .cloned();
    let Some(route) = route else {
        return; // a tunnel closed a moment ago
    };
    if route.udp {
        return match header.flow {
            Some(id) => relay_datagrams(stream, &route.local, id, link.as_ref(), &flows).await,
            None => super::udp::relay(stream, &route.local).await,
        };
    }
    let Ok(mut service) = TcpStream::connect(&route.local).await else {
        return; // the public client sees its connection close
    };
    let _ = service.set_nodelay(true);
    if let Some(version) = route.proxy {
        let Ok(client) = header.peer.parse() else {
            return; // no client address to give: not a guess
        };
        let reached = header.public.as_deref().and_then(|p| p.parse().ok());
        let first = super::proxy_header::header(version, client, reached);
        if tokio::io::AsyncWriteExt::write_all(&mut service, &first)
            .await
            .is_err()
        {
            return;
        }
    }
    pump::join_socket(service, stream, None, None).await;
}
