//! Attacks on sign-in and sign-up against a real edge (the `beamd` binary,
//! its sled log, real sockets): a burst of concurrent wrong passwords, a
//! lock-out from other addresses, telling known emails from unknown ones by
//! time, unthrottled sign-ups and reset requests, and a sign-up's plan.
//!
//! Other client addresses are other loopback addresses (127.0.0.2, …): the
//! edge only ever listens on 127.0.0.1:0.

use crate::common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::api::{call, error_of, Answer, Api};
use common::tunnel::{start_edge, Edge};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpSocket;

/// A JSON `POST` sent from the loopback address `from`.
async fn post_from(
    api: SocketAddr,
    from: Ipv4Addr,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<Answer> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    let stream = socket.connect(api).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", api.to_string())
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_string())))?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let raw = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    Ok(Answer {
        status,
        headers,
        body,
        text,
        raw,
    })
}

fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

fn login(email: &str, password: &str) -> String {
    format!(r#"{{"email":"{email}","password":"{password}"}}"#)
}

async fn register(edge: &Edge, from: Ipv4Addr, email: &str, password: &str) -> Result<Answer> {
    let body = format!(r#"{{"name":"N","email":"{email}","password":"{password}"}}"#);
    post_from(edge.api, from, "/api/v1/auth/register", &body, None).await
}

/// The edge process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(edge: &Edge) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", edge.proc.child.id()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM")
}

/// Password hashes the edge ran so far (its `beamd_password_hashes_total`).
async fn hashes_run(edge: &Edge) -> Result<u64> {
    let m = call(edge.api, "GET", "/metrics", None, None, &[]).await?;
    m.text
        .lines()
        .find_map(|l| l.strip_prefix("beamd_password_hashes_total "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no beamd_password_hashes_total in /metrics ({})", m.status))
}

fn edge() -> Result<(tempfile::TempDir, Edge)> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    Ok((dir, edge))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_wrong_passwords_are_charged_before_hashing() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let (_dir, edge) = edge()?;
    let made = register(&edge, loopback(1), "ann@example.org", "correct horse").await?;
    ensure!(made.status == 201, "{}", made.text);
    let before = peak_rss_kib(&edge)?;
    let hashes_before = hashes_run(&edge).await.unwrap_or(0);
    let api = edge.api;
    let tries: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let body = login("ann@example.org", "wrong password");
                post_from(api, loopback(1), "/api/v1/auth/login", &body, None).await
            })
        })
        .collect();
    let (mut hashed, mut limited) = (0, 0);
    for t in tries {
        let a = t.await??;
        match a.status {
            401 => hashed += 1,
            429 => limited += 1,
            other => anyhow::bail!("unexpected {other}: {}", a.text),
        }
    }
    let after = peak_rss_kib(&edge)?;
    let counted = hashes_run(&edge)
        .await
        .map(|n| (n - hashes_before).to_string())
        .unwrap_or_else(|e| format!("? ({e})"));
    eprintln!(
        "40 concurrent wrong passwords: {hashed} answered 401, {limited} refused (429), \
         {counted} hashes run; edge VmHWM {} MiB before, {} MiB after",
        before / 1024,
        after / 1024
    );
    ensure!(
        hashed <= 5 && limited == 40 - hashed,
        "{hashed} of 40 concurrent wrong passwords were hashed; at most 5 may be"
    );
    ensure!(
        after.saturating_sub(before) < 128 * 1024,
        "the peak RSS grew by {} MiB",
        (after - before) / 1024
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hashes_are_bounded_whatever_the_emails() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let (_dir, edge) = edge()?;
    let before = peak_rss_kib(&edge)?;
    let api = edge.api;
    // 40 emails from 40 addresses: no throttle bucket is shared, so only the
    // bound on concurrent hashes keeps the memory down.
    let tries: Vec<_> = (0..40u8)
        .map(|i| {
            tokio::spawn(async move {
                let body = login(&format!("nobody{i}@example.org"), "wrong password");
                post_from(api, loopback(10 + i), "/api/v1/auth/login", &body, None).await
            })
        })
        .collect();
    for t in tries {
        let a = t.await??;
        ensure!([401, 429].contains(&a.status), "{}", a.text);
    }
    let after = peak_rss_kib(&edge)?;
    let hashed = hashes_run(&edge).await?;
    eprintln!(
        "40 concurrent sign-ins of unknown emails: {hashed} hashes run; \
         edge VmHWM {} MiB before, {} MiB after",
        before / 1024,
        after / 1024
    );
    ensure!(
        hashed == 40,
        "an unknown email costs a hash: {hashed} for 40"
    );
    ensure!(
        after.saturating_sub(before) < 128 * 1024,
        "the peak RSS grew by {} MiB",
        (after - before) / 1024
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_elsewhere_do_not_lock_the_owner_out() -> Result<()> {
    let (_dir, edge) = edge()?;
    let owner = loopback(1);
    let made = register(&edge, owner, "ann@example.org", "correct horse").await?;
    ensure!(made.status == 201, "{}", made.text);
    let a = post_from(
        edge.api,
        owner,
        "/api/v1/auth/login",
        &login("ann@example.org", "correct horse"),
        None,
    )
    .await?;
    ensure!(a.status == 200, "{}", a.text);
    // One address: five wrong tries, then 429 for that address.
    for i in 0..6 {
        let a = post_from(
            edge.api,
            loopback(2),
            "/api/v1/auth/login",
            &login("ann@example.org", "guess"),
            None,
        )
        .await?;
        let want = if i < 5 { 401 } else { 429 };
        ensure!(a.status == want, "try {i} from 127.0.0.2: {}", a.text);
    }
    let a = post_from(
        edge.api,
        owner,
        "/api/v1/auth/login",
        &login("ann@example.org", "correct horse"),
        None,
    )
    .await?;
    ensure!(
        a.status == 200,
        "the owner is locked out by another address: {}",
        a.text
    );
    // Many addresses: the slower limit for the email holds for addresses
    // that never signed in to it, and still not for the owner's.
    let mut refused = 0;
    for n in 3..12u8 {
        for _ in 0..5 {
            let a = post_from(
                edge.api,
                loopback(n),
                "/api/v1/auth/login",
                &login("ann@example.org", "guess"),
                None,
            )
            .await?;
            ensure!([401, 429].contains(&a.status), "{}", a.text);
            refused += usize::from(a.status == 429);
        }
    }
    ensure!(refused > 0, "50 failures from 10 addresses, none refused");
    let a = post_from(
        edge.api,
        loopback(200),
        "/api/v1/auth/login",
        &login("ann@example.org", "correct horse"),
        None,
    )
    .await?;
    ensure!(
        a.status == 429 && error_of(&a) == "rate_limited",
        "a fresh address, past the email's limit: {}",
        a.text
    );
    let a = post_from(
        edge.api,
        owner,
        "/api/v1/auth/login",
        &login("ann@example.org", "correct horse"),
        None,
    )
    .await?;
    ensure!(a.status == 200, "the owner's address: {}", a.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_take_as_long_as_known_ones() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let (_dir, edge) = edge()?;
    let made = register(&edge, loopback(1), "ann@example.org", "correct horse").await?;
    ensure!(made.status == 201, "{}", made.text);
    let time = |email: String, from: Ipv4Addr| {
        let api = edge.api;
        async move {
            let started = Instant::now();
            let a = post_from(
                api,
                from,
                "/api/v1/auth/login",
                &login(&email, "wrong password"),
                None,
            )
            .await?;
            ensure!(a.status == 401, "{}", a.text);
            anyhow::Ok(started.elapsed())
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..4u8 {
        known.push(time("ann@example.org".into(), loopback(20 + i)).await?);
        unknown.push(time(format!("nobody{i}@example.org"), loopback(30 + i)).await?);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1], unknown[1]);
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    eprintln!("sign-in with a wrong password: known email {k:?}, unknown {u:?}, ratio {ratio:.2}");
    ensure!(
        (0.5..2.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}: the time tells who has an account"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_and_reset_requests_are_rate_limited() -> Result<()> {
    let (_dir, edge) = edge()?;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let a = register(
            &edge,
            loopback(1),
            &format!("u{i}@example.org"),
            "long enough",
        )
        .await?;
        statuses.push(a.status);
    }
    ensure!(
        statuses.contains(&429),
        "12 sign-ups from one address: {statuses:?}"
    );
    let mut statuses = Vec::new();
    for n in 0..12u8 {
        let a = post_from(
            edge.api,
            loopback(40 + n),
            "/api/v1/auth/forgot-password",
            r#"{"email":"u0@example.org"}"#,
            None,
        )
        .await?;
        statuses.push(a.status);
    }
    ensure!(
        statuses.contains(&429),
        "12 reset requests for one email from 12 addresses: {statuses:?}"
    );
    let mut statuses = Vec::new();
    for i in 0..12 {
        let a = post_from(
            edge.api,
            loopback(60),
            "/api/v1/auth/forgot-password",
            &format!(r#"{{"email":"x{i}@example.org"}}"#),
            None,
        )
        .await?;
        statuses.push(a.status);
    }
    ensure!(
        statuses.contains(&429),
        "12 reset requests from one address: {statuses:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_gets_the_operators_finite_plan() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--signup-plan",
            "tunnels=2,domains=3,pending-domains=4,bandwidth-gib=1",
        ],
    )?;
    let made = register(&edge, loopback(1), "ann@example.org", "correct horse").await?;
    ensure!(made.status == 201, "{}", made.text);
    let ann = Api::new(edge.api, made.body["token"].as_str().context("token")?);
    let usage = ann.get("/api/v1/usage").await?;
    ensure!(usage.status == 200, "{}", usage.text);
    let limits = &usage.body["limits"];
    ensure!(
        limits["tunnels"] == 2
            && limits["domains"] == 3
            && limits["pendingDomains"] == 4
            && limits["bandwidthBytes"] == 1u64 << 30,
        "{}",
        usage.text
    );
    // Without the flag: finite defaults.
    let (_dir, edge) = self::edge()?;
    let made = register(&edge, loopback(1), "bob@example.org", "correct horse").await?;
    ensure!(made.status == 201, "{}", made.text);
    let bob = Api::new(edge.api, made.body["token"].as_str().context("token")?);
    let usage = bob.get("/api/v1/usage").await?;
    let limits = &usage.body["limits"];
    for what in ["tunnels", "domains", "pendingDomains", "bandwidthBytes"] {
        ensure!(limits[what].is_u64(), "{what} unlimited: {}", usage.text);
    }
    let help = common::beamd(&["edge", "--help"]);
    ensure!(
        common::text(&help.stdout).contains("--signup-plan"),
        "--signup-plan is documented"
    );
    Ok(())
}
