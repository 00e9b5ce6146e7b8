//! Health checks of a pool member's local service (`--health-check`): the
//! agent tries the service at an interval; after [`FAILS_TO_LEAVE`] failures
//! in a row it closes the tunnel (the member leaves its pool, new requests
//! go to the others), and after one success it opens it again (the member
//! joins again). The tunnels it wants go to the session as a config file's
//! reloads do.

use std::time::Duration;

use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::protocol::TunnelRequest;

/// Failed checks in a row that take a member out of its pool.
pub const FAILS_TO_LEAVE: u32 = 3;

/// What a check tries on the local service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET PATH`: a 2xx or 3xx answer passes.
    Http(String),
    /// A TCP connection that opens passes.
    Connect,
}

/// A tunnel's health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is tried.
    pub probe: Probe,
    /// How often (each try gets at most this long, and at most 3 s).
    pub interval: Duration,
}

impl HealthCheck {
    /// Tries the service at `addr` once; why it failed, if it did.
    pub async fn check(&self, addr: &str) -> Result<(), String> {
        let within = self.interval.min(Duration::from_secs(3));
        match tokio::time::timeout(within, self.try_once(addr)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
        }
    }

    async fn try_once(&self, addr: &str) -> Result<(), String> {
        let socket = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let Probe::Http(path) = &self.probe else {
            return Ok(());
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path.as_str())
            .header(hyper::header::HOST, addr)
            .header(hyper::header::USER_AGENT, "beamd-health-check")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let status = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
            .status();
        match status.is_success() || status.is_redirection() {
            true => Ok(()),
            false => Err(format!("answered {status}")),
        }
    }
}

/// Checks the service at `addr` until the receiver is gone, sending its
/// health on every change (`false` after [`FAILS_TO_LEAVE`] failures in a
/// row, `true` after a pass); it starts healthy. `who` names it on stderr.
pub fn watch_health(
    addr: String,
    check: HealthCheck,
    who: String,
) -> mpsc::UnboundedReceiver<bool> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(check.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut healthy, mut fails) = (true, 0u32);
        loop {
            tick.tick().await;
            if tx.is_closed() {
                return;
            }
            match check.check(&addr).await {
                Ok(()) => {
                    fails = 0;
                    if !healthy {
                        healthy = true;
                        eprintln!("{who}: {addr} passes its health check again; joining the pool");
                        if tx.send(true).is_err() {
                            return;
                        }
                    }
                }
                Err(why) => {
                    fails += 1;
                    if healthy && fails >= FAILS_TO_LEAVE {
                        healthy = false;
                        eprintln!(
                            "{who}: {addr} failed its health check {fails} times ({why}); leaving the pool"
                        );
                        if tx.send(false).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

/// Checks `tunnel`'s service until the receiver is gone, sending the tunnels
/// wanted (it, or none) on every change of its health.
pub fn watch(
    tunnel: TunnelRequest,
    check: HealthCheck,
    label: &'static str,
) -> mpsc::UnboundedReceiver<Vec<TunnelRequest>> {
    let mut health = watch_health(tunnel.local_addr.clone(), check, label.to_string());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(healthy) = health.recv().await {
            let wanted = if healthy {
                vec![tunnel.clone()]
            } else {
                Vec::new()
            };
            if tx.send(wanted).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_fails_and_an_open_one_passes_a_connect_check() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let check = HealthCheck {
            probe: Probe::Connect,
            interval: Duration::from_millis(500),
        };
        assert_eq!(check.check(&addr).await, Ok(()));
        drop(listener);
        assert!(check.check(&addr).await.is_err());
    }
}
