//! One connection to an edge: connect, hello, welcome, then forward each
//! stream the edge opens to the local service until the connection drops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamd_transports::{Connection, Transport, TransportError};
use tokio::net::TcpStream;

use super::settings::AgentConn;
use crate::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, StreamHeader, Token, TunnelRequest,
    PROTOCOL_VERSION,
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

pub(super) const FATAL: &[&str] = &[
    "unauthorized",
    "unsupported_version",
    "invalid_request",
    "limit_exceeded",
    "conflict",
    "taken_over",
];
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A running agent: its connection options and how it names itself in output.
pub(super) struct Agent<'a> {
    pub args: &'a AgentConn,
    pub label: &'static str,
    /// Where the public address goes instead of stdout (benchmarks).
    pub announce: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Agent<'_> {
    /// One connection: hello, welcome, then serve streams until it drops.
    pub(super) async fn attempt<T: Transport>(
        &self,
        transport: &T,
        edge: SocketAddr,
        request: &TunnelRequest,
        connect_within: Option<Duration>,
    ) -> (Ended, Option<u16>) {
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
            Err(e) => return (Ended::Unreachable(e.to_string()), None),
        };
        let Ok(mut control) = conn.open_stream().await else {
            return (
                Ended::Unreachable("cannot open the control stream".into()),
                None,
            );
        };
        let local = request.local_addr.clone();
        let hello = AgentFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: Token(args.token.clone().unwrap_or_default()),
            tunnels: vec![request.clone()],
        });
        if let Err(e) = write_frame(&mut control, &hello).await {
            return (Ended::Unreachable(e.to_string()), None);
        }
        let welcome = tokio::time::timeout(
            Duration::from_secs(15),
            read_frame::<EdgeFrame>(&mut control),
        )
        .await;
        let assigned = match welcome {
            Ok(Ok(EdgeFrame::Welcome { tunnels, .. })) => tunnels,
            Ok(Ok(EdgeFrame::Error(e))) if FATAL.contains(&e.code.as_str()) => {
                return (Ended::Refused(format!("{}: {}", e.code, e.message)), None)
            }
            Ok(Ok(EdgeFrame::Error(e))) => {
                return (Ended::Lost(format!("{}: {}", e.code, e.message)), None)
            }
            Ok(Ok(EdgeFrame::Heartbeat)) => return (Ended::Unreachable("no welcome".into()), None),
            Ok(Err(e)) => return (Ended::Unreachable(e.to_string()), None),
            Err(_) => return (Ended::Unreachable("no welcome within 15 s".into()), None),
        };
        let Some(tunnel) = assigned.first() else {
            return (Ended::Lost("the edge assigned no tunnel".into()), None);
        };
        if let Some(tx) = &self.announce {
            let _ = tx.send(tunnel.public.clone());
        } else {
            crate::say!(
                "{}: tunnel {} -> {local} ({}, over {} to {edge})",
                self.label,
                tunnel.public,
                tunnel.id,
                transport.name()
            );
            for alias in &tunnel.aliases {
                crate::say!("{}: also at {alias}", self.label);
            }
            if let Some(notice) = &tunnel.notice {
                crate::say!("{}: {notice}", self.label);
            }
        }
        let assigned_port = tunnel.port;
        let streams = {
            let (conn, local) = (conn.clone(), local.clone());
            tokio::spawn(async move {
                while let Ok(stream) = conn.accept_stream().await {
                    tokio::spawn(forward(stream, local.clone()));
                }
            })
        };
        let (mut reader, mut writer) = tokio::io::split(control);
        let beats = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                if write_frame(&mut writer, &AgentFrame::Heartbeat)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let ended = loop {
            match read_frame::<EdgeFrame>(&mut reader).await {
                Ok(EdgeFrame::Heartbeat) => continue,
                Ok(EdgeFrame::Error(e)) if FATAL.contains(&e.code.as_str()) => {
                    break Ended::Refused(format!("{}: {}", e.code, e.message))
                }
                Ok(EdgeFrame::Error(e)) => break Ended::Lost(format!("{}: {}", e.code, e.message)),
                Ok(EdgeFrame::Welcome { .. }) => {
                    break Ended::Lost("unexpected second welcome".into())
                }
                Err(e) => break Ended::Lost(e.to_string()),
            }
        };
        beats.abort();
        streams.abort();
        conn.close();
        (ended, assigned_port)
    }
}

/// Forwards one stream the edge opened to the local service.
async fn forward<S>(mut stream: S, local: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + beamd_transports::PlainSocket + Unpin,
{
    let header = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<StreamHeader>(&mut stream),
    )
    .await;
    if !matches!(header, Ok(Ok(_))) {
        return;
    }
    let Ok(service) = TcpStream::connect(&local).await else {
        return; // the public client sees its connection close
    };
    let _ = service.set_nodelay(true);
    pump::join_socket(service, stream, None, None).await;
}
