//! Who may use an HTTP tunnel, checked at the edge over each transport:
//! basic auth (401), client networks (403), a service too slow (504), bad
//! rules refused; the refusals captured and counted like any request; and
//! public HTTPS with a certificate from files.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine;
use beamd_transports::tls::Trust;
use common::api::Api;
use common::http::{client, full, get, http_server, send, start_http_agent, Body};
use common::tunnel::{https_edge, start_edge, Proc, ADMIN_TOKEN};
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

fn with_auth(host: &str, path: &str, pair: &str) -> Result<Request<Body>> {
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    Ok(Request::get(path)
        .header("host", host)
        .header("authorization", value)
        .body(full(""))?)
}

async fn access_through(transport: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        transport,
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--upstream-timeout-secs",
            "1",
        ],
    )?;
    let (_locked, locked, public) = start_http_agent(
        &edge,
        transport,
        web,
        "locked",
        &["--basic-auth", "ann:s3cret", "--allow", "127.0.0.0/8"],
    )?;
    let (_lan, lan, _) =
        start_http_agent(&edge, transport, web, "lan", &["--allow", "10.0.0.0/8"])?;

    let mut c = client(public).await?;
    let resp = {
        c.ready().await?;
        c.send_request(get(&locked, "/hello")?).await?
    };
    ensure!(resp.status() == 401, "no credentials: {}", resp.status());
    ensure!(
        resp.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.as_bytes().starts_with(b"Basic")),
        "a 401 asks for basic auth"
    );
    resp.into_body().collect().await?;
    let (status, _) = send(&mut c, with_auth(&locked, "/hello", "ann:wrong")?).await?;
    ensure!(status == 401, "wrong password: {status}");
    let (status, body) = send(&mut c, with_auth(&locked, "/hello", "ann:s3cret")?).await?;
    ensure!(
        (status, body.as_str()) == (200, "hello through the tunnel"),
        "right password: {status} {body}"
    );
    // 127.0.0.1 is outside 10.0.0.0/8: refused whatever the credentials.
    let (status, body) = send(&mut c, get(&lan, "/hello")?).await?;
    ensure!(status == 403, "outside the allowlist: {status} {body}");
    // The service takes 5 s; the edge waits 1 s.
    let (status, body) = send(&mut c, with_auth(&locked, "/slow", "ann:s3cret")?).await?;
    ensure!(
        status == 504 && body.contains("did not answer"),
        "slow service: {status} {body}"
    );

    // The refusals never reached the agent, yet they are requests: in the
    // history by status code, with why and no body, and counted in usage.
    let api = Api::new(edge.api, ADMIN_TOKEN);
    for (status, n, reason, host) in [(401, 2, "credentials", &locked), (403, 1, "network", &lan)] {
        let page = logs_counting(&api, &format!("statusCode={status}"), n).await?;
        for r in page["results"].as_array().context("results")? {
            ensure!(
                r["refused"] == reason
                    && r["path"] == "/hello"
                    && Some(r["host"].as_str().unwrap_or("")) == host.split(':').next()
                    && r["ip"] == "127.0.0.1"
                    && r["bytesIn"] == 0
                    && r["bytesOut"] == 0,
                "{status}: {r}"
            );
        }
    }
    let served = logs_counting(&api, "statusCode=200", 1).await?;
    ensure!(served["results"][0]["refused"].is_null(), "{served}");
    let mut requests = 0;
    for _ in 0..100 {
        let history = api.get("/api/v1/usage/history?days=2").await?;
        requests = (history.body["history"].as_array().into_iter().flatten())
            .filter_map(|d| d["requests"].as_u64())
            .sum::<u64>();
        if requests == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(requests == 5, "usage counted {requests} requests of 5");

    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    // In the log: the 200 and the 504 the service answered, and the three refusals.
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    let mut statuses: Vec<(u64, String)> = common::captured_requests(
        common::text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
    )
    .into_iter()
    .filter_map(|e| {
        let refused = e["event"]["refused"].as_str().unwrap_or("").to_string();
        Some((e["event"]["status"].as_u64()?, refused))
    })
    .collect();
    statuses.sort();
    let want = [
        (200, ""),
        (401, "credentials"),
        (401, "credentials"),
        (403, "network"),
        (504, ""),
    ]
    .map(|(s, r)| (s, r.to_string()));
    ensure!(statuses == want, "captured {statuses:?}");
    Ok(())
}

/// A page of `/logs?{query}` once it counts `n` requests.
async fn logs_counting(api: &Api, query: &str, n: usize) -> Result<serde_json::Value> {
    let mut page = serde_json::Value::Null;
    for _ in 0..100 {
        page = api.get(&format!("/api/v1/logs?{query}")).await?.body;
        if page["count"] == n {
            return Ok(page);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("/logs?{query} never counted {n}: {page}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_over_quic() -> Result<()> {
    access_through("quic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_over_websocket() -> Result<()> {
    access_through("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_over_tcp() -> Result<()> {
    access_through("tcp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_access_rules_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let addr = edge.agent_addr.to_string();
    for (flag, value, says) in [
        ("--allow", "10.0.0.0/33", "not an IP network"),
        ("--basic-auth", "nocolon", "USER:PASSWORD"),
    ] {
        let mut agent = Proc::spawn(
            &[
                "http",
                "9",
                "--name",
                "bad",
                "--edge",
                &addr,
                "--transport",
                "tcp",
                flag,
                value,
            ],
            &[("BEAMD_TOKEN", ADMIN_TOKEN)],
        )?;
        let status = agent.child.wait()?;
        ensure!(!status.success(), "{flag} {value} must fail");
        // stderr is read by a thread: give it a moment to catch up.
        let mut said = false;
        for _ in 0..50 {
            said = agent.stderr_contains("invalid_request") && agent.stderr_contains(says);
            if said {
                break;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        ensure!(said, "{flag} {value}: the refusal says why");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_ingress_serves_tunnels_with_its_certificate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = tempfile::tempdir()?;
    let web = http_server().await?;
    let (edge, fingerprint) = https_edge(dir.path(), certs.path(), "secure.localhost", "quic")?;
    let (_agent, url, public) = start_http_agent(&edge, "quic", web, "secure", &[])?;
    ensure!(url.starts_with("secure.localhost:"), "{url}");
    // A TLS client that accepts exactly the certificate given to the edge.
    let mut tls = Trust::Fingerprint(fingerprint).client_config()?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("secure.localhost")?;
    let stream = connector
        .connect(name, TcpStream::connect(public).await?)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (status, body) = send(&mut sender, get(&url, "/hello")?).await?;
    ensure!(
        status == 200 && body == "hello through the tunnel",
        "{status} {body}"
    );
    let (_, seen) = send(&mut sender, get(&url, "/headers")?).await?;
    ensure!(seen == "127.0.0.1 secure.localhost https", "{seen}");
    // Domain fronting: on a connection made for secure.localhost, a request
    // naming another host is answered 421 and never forwarded.
    let port = url.rsplit(':').next().context("port")?;
    let (status, body) = send(
        &mut sender,
        get(&format!("elsewhere.localhost:{port}"), "/hello")?,
    )
    .await?;
    ensure!(
        status == 421 && body.contains("opened for secure.localhost"),
        "{status} {body}"
    );
    // Plain HTTP on the HTTPS port gets no answer.
    let mut plain = client(public).await?;
    ensure!(
        send(&mut plain, get(&url, "/hello")?).await.is_err(),
        "plain HTTP must not be served on the HTTPS port"
    );
    Ok(())
}

/// How long `addr` holds a connection that sent `head` and nothing more
/// (at most 8 s, then an error).
async fn held_for(addr: std::net::SocketAddr, head: &str) -> Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(head.as_bytes()).await?;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("{addr} held a half-sent request for 8 s"))?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--header-timeout-secs", "2"],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", web, "slow", &[])?;
    // Slowloris: a request line and one header, then nothing more, on the
    // public port and on the API.
    for (addr, host) in [(public, url.as_str()), (edge.api, "api")] {
        let held = held_for(addr, &format!("GET /hello HTTP/1.1\r\nHost: {host}\r\n")).await?;
        ensure!(
            held >= Duration::from_millis(1500),
            "{addr}: cut off before the 2 s limit: {held:?}"
        );
    }
    // A client that sends its request whole is served as ever.
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&url, "/hello")?).await?;
    ensure!(
        status == 200 && body == "hello through the tunnel",
        "{status} {body}"
    );
    let api = common::api::Api::new(edge.api, ADMIN_TOKEN);
    let me = api.get("/api/v1/workspace").await?;
    ensure!(me.status == 200, "{}", me.text);
    Ok(())
}

/// A refused request with a body, over HTTP/2, is answered, not reset:
/// curl (Debian's 7.88) sends its POST's body after the headers, and when
/// the edge answered the headers at once the stream was reset under it
/// (exit 92, "Stream error in the HTTP/2 framing layer") in 1 to 8% of
/// requests here. The edge now reads a small body before it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_over_http2_gets_its_answer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let http = edge.http.context("http")?;
    let (_agent, host, _) =
        start_http_agent(&edge, "tcp", web, "guarded", &["--basic-auth", "u:p"])?;
    let url = format!("http://{http}/form");
    let (h2_host, h2_url) = (host.clone(), url.clone());
    let statuses = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
        let mut seen = Vec::new();
        for _ in 0..400 {
            let out = std::process::Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--http2-prior-knowledge", "--max-time", "10"])
                .args(["-H", &format!("Host: {h2_host}"), "--data", "a=1", &h2_url])
                .output()
                .context("curl")?;
            seen.push(match out.status.code() {
                Some(0) => String::from_utf8_lossy(&out.stdout).into_owned(),
                other => format!(
                    "curl exit {other:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(seen)
    })
    .await??;
    let failed: Vec<_> = statuses.iter().filter(|s| *s != "401").collect();
    ensure!(
        failed.is_empty(),
        "{} of 400 refused POSTs were not answered 401: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    // A client that waits for `100 Continue` is refused before it sends a
    // byte of its body, not asked for it only to be refused.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 1 << 20])?;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_upload}",
            ])
            .args([
                "--http1.1",
                "-H",
                "Expect: 100-continue",
                "--max-time",
                "10",
            ])
            .args(["-H", &format!("Host: {host}")])
            .arg("--data-binary")
            .arg(format!("@{}", big.display()))
            .arg(&url)
            .output()
    })
    .await??;
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(
        said == "401 0",
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
