//! `GET /api/v1/usage?days=N` through the real API server (in process, on
//! 127.0.0.1) and a real HTTP client with keep-alive: the median time of a
//! request per `days`, on whatever history the core holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use beamd_events::vocabulary::KeyKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::actors::Core;
use crate::api::{serve, ApiState};
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::PublicAddresses;
use crate::egress::Egress;

/// Median request time of `usage?days=N` for each of `days`, `n` requests each.
pub async fn usage_over_http(
    core: Arc<Core>,
    tenant: &str,
    days: &[u64],
    n: usize,
) -> Result<Vec<(u64, Duration)>> {
    let (key, secret) = core
        .issue_key(
            tenant,
            "bench",
            KeyKind::Api,
            crate::domain::Scopes::of(&[crate::domain::Scope::Read]),
            None,
            crate::domain::Scope::Admin,
        )
        .await?;
    let token = format!("{}.{}", key.id, secret.expose());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = ApiState {
        acme: None,
        core,
        public: PublicAddresses {
            advertise: "127.0.0.1".into(),
            http_port: None,
            https: false,
        },
        dns: DnsVerifier::default(),
        egress: Arc::new(Egress::new(Vec::new(), DnsVerifier::default())),
        disk: DiskGuard::off(),
        started: Instant::now(),
        node: "bench".into(),
        agents: Vec::new(),
        fingerprint: String::new(),
        agent_tls: false,
        metrics: None,
        accounts: crate::api::accounts::AccountSettings {
            signup: false,
            tunnel_base: "bench.localhost".into(),
            jwt: crate::api::accounts::secrets::JwtKey::from_bytes(vec![7; 32]),
            mail: None,
            public_url: format!("http://{addr}"),
            signup_plan: crate::domain::tenant::parse_plan("")?,
            throttle: Default::default(),
            hashing: crate::api::accounts::secrets::Hashing::per_core()
                .map_err(|e| anyhow::anyhow!("{}", e.body.message))?,
        },
        tlog: None,
        bodies: None,
        replayer: None,
        witnesses: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(listener, Arc::new(state), stop.clone(), None));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
            .await?;
    tokio::spawn(conn);
    let mut out = Vec::new();
    for &d in days {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let req = Request::get(format!("/api/v1/usage?days={d}"))
                .header("host", addr.to_string())
                .header("authorization", format!("Bearer {token}"))
                .body(Empty::<Bytes>::new())?;
            let t = Instant::now();
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            ensure!(
                resp.status().is_success(),
                "usage answered {}",
                resp.status()
            );
            resp.into_body().collect().await?;
            samples.push(t.elapsed());
        }
        samples.sort();
        out.push((d, samples[samples.len() / 2]));
    }
    drop(sender);
    stop.cancel();
    let _ = server.await;
    Ok(out)
}
