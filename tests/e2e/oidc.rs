//! Sign-in at the edge with OpenID Connect (#31), against a real provider
//! (`oidc-provider` under node) started by the test, through a real edge
//! serving HTTPS, a real agent and a scripted browser (curl with a cookie
//! jar): the redirect to the provider, the sign-in and the callback, the
//! identity headers the service gets (never the client's own), the allow
//! list, tampered cookies, WebSocket upgrades and HTTP/2, the inspector's
//! record, logout; and a provider the egress policy refuses.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::common::api::Api;
use crate::common::http::{full, service, start_http_agent, Body};
use crate::common::oidc::{Browser, OidcProvider};
use crate::common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};

#[test]
fn the_test_provider_signs_a_person_in_and_redirects_with_a_code() -> Result<()> {
    let callback = "http://web.localhost:1234/.beamd/oidc/callback";
    let provider = OidcProvider::start("beamd", "s3cret", callback)?;
    // PKCE S256 of the verifier in RFC 7636's example.
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = format!(
        "{}/auth?client_id=beamd&response_type=code&scope=openid%20email&redirect_uri={}&state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256",
        provider.issuer,
        "http%3A%2F%2Fweb.localhost%3A1234%2F.beamd%2Foidc%2Fcallback",
    );
    let browser = Browser::new(&[])?;
    let back = browser.sign_in(&url, &provider.issuer, "alice")?;
    ensure!(
        back.starts_with(callback) && back.contains("code=") && back.contains("state=st4te"),
        "{back}"
    );
    Ok(())
}

/// What the service saw of one request: path, X-Beamd-User, X-Beamd-Email, Cookie.
type Seen = Arc<Mutex<Vec<[String; 4]>>>;

/// The service behind the tunnel: records every request it gets and
/// answers with what it saw; `/ws` is the common WebSocket echo.
async fn recording_service() -> Result<(u16, Seen)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let row = [
                            req.uri().path().to_string(),
                            header("x-beamd-user"),
                            header("x-beamd-email"),
                            header("cookie"),
                        ];
                        log.lock().unwrap().push(row.clone());
                        if req.uri().path() == "/ws" {
                            return service(req).await;
                        }
                        let text = format!("user={} email={} cookie={}", row[1], row[2], row[3]);
                        Ok::<Response<Body>, hyper::Error>(Response::new(full(text)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok((port, seen))
}

/// An edge serving HTTPS for `web.localhost` (a certificate made in
/// `certs`, whose PEM is returned), allowed to reach the loopback provider.
fn edge_for_sign_in(
    dir: &Path,
    certs: &Path,
    egress: bool,
    extra: &[&str],
) -> Result<(Edge, std::path::PathBuf)> {
    use beamd_transports::tls::EdgeIdentity;
    EdgeIdentity::load_or_create(certs, &["web.localhost".to_string()])?;
    let cert = certs.join("edge-cert.pem");
    let key = certs.join("edge-key.pem");
    let mut args = vec![
        "--http-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().context("path")?,
        "--tls-key",
        key.to_str().context("path")?,
    ];
    if egress {
        args.extend(["--egress-allow", "127.0.0.1/32"]);
    }
    args.extend_from_slice(extra);
    Ok((start_edge(dir, "quic", "127.0.0.1:0", &args)?, cert))
}

fn secret_file(dir: &Path) -> Result<String> {
    let path = dir.join("client-secret");
    std::fs::write(&path, "s3cret\n")?;
    Ok(path.to_str().context("path")?.to_string())
}

/// The sign-in agent's arguments.
fn oidc_args<'a>(issuer: &'a str, secret: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--oidc-issuer",
        issuer,
        "--oidc-client-id",
        "beamd",
        "--oidc-client-secret-file",
        secret,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_behind_sign_in_lets_in_only_who_the_provider_signed_in_and_the_rule_allows(
) -> Result<()> {
    let (dir, certs) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (edge, ca) = edge_for_sign_in(dir.path(), certs.path(), true, &[])?;
    let port = edge.http.context("https")?.port();
    let base = format!("https://web.localhost:{port}");
    let callback = format!("{base}/.beamd/oidc/callback");
    let provider = OidcProvider::start("beamd", "s3cret", &callback)?;
    let (web, seen) = recording_service().await?;
    let secret = secret_file(dir.path())?;
    let args = oidc_args(
        &provider.issuer,
        &secret,
        &["--oidc-allow-email", "alice@example.test"],
    );
    let (_agent, _, _) = start_http_agent(&edge, "quic", web, "web", &args)?;
    let name = format!("web.localhost:{port}");
    let alice = Browser::new(&[&name])?.trusting(&ca);

    // No session: a browser is sent to the provider; the service sees nothing.
    let first = alice.fetch(&format!("{base}/private?x=1"), None)?;
    ensure!(first.status == 302, "{} {}", first.status, first.body);
    let to_provider = first.location.context("a redirect")?;
    ensure!(
        to_provider.starts_with(&format!("{}/auth?", provider.issuer))
            && to_provider.contains("code_challenge_method=S256")
            && to_provider.contains("redirect_uri=https%3A%2F%2Fweb.localhost"),
        "{to_provider}"
    );
    ensure!(
        first
            .set_cookies
            .iter()
            .any(|c| c.starts_with("beamd_sign_in=")
                && c.contains("HttpOnly")
                && c.contains("Secure")
                && c.contains("Path=/.beamd/oidc/callback")),
        "{:?}",
        first.set_cookies
    );
    ensure!(seen.lock().unwrap().is_empty(), "the service was reached");

    // Signed in at the provider, back through the callback, on to the page.
    let back = alice.sign_in(&to_provider, &provider.issuer, "alice")?;
    ensure!(back.starts_with(&callback), "{back}");
    let landed = alice.fetch(&back, None)?;
    ensure!(
        landed.status == 302 && landed.location.as_deref() == Some("/private?x=1"),
        "{} {:?} {}",
        landed.status,
        landed.location,
        landed.body
    );
    let session = landed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("beamd_session="))
        .context("a session cookie")?;
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=43200",
    ] {
        ensure!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    ensure!(
        !session.to_ascii_lowercase().contains("domain="),
        "host-only: {session}"
    );

    // The service hears who signed in, and not the edge's cookie; headers
    // a client forges under those names never reach it.
    let page = alice.fetch_with(
        &format!("{base}/private?x=1"),
        None,
        &[
            "-H",
            "X-Beamd-User: boss",
            "-H",
            "X-Beamd-Email: boss@example.test",
            "-H",
            "Cookie: theirs=1",
        ],
    )?;
    ensure!(page.status == 200, "{} {}", page.status, page.body);
    ensure!(
        page.body
            .starts_with("user=alice email=alice@example.test cookie=")
            && !page.body.contains("beamd_session"),
        "{}",
        page.body
    );
    ensure!(
        page.body.contains("theirs=1"),
        "the client's own cookie is kept: {}",
        page.body
    );
    // HTTP/2 streams are covered the same way.
    let h2 = alice.fetch_with(&format!("{base}/over-h2"), None, &["--http2"])?;
    ensure!(
        h2.status == 200 && h2.body.contains("email=alice@example.test"),
        "{}",
        h2.body
    );

    // Someone the provider signs in, but the rule does not allow: 403 at
    // the callback, no session, nothing reaches the service.
    let mallory = Browser::new(&[&name])?.trusting(&ca);
    let redirect = mallory.fetch(&format!("{base}/private"), None)?;
    let back = mallory.sign_in(
        &redirect.location.context("redirect")?,
        &provider.issuer,
        "mallory",
    )?;
    let refused = mallory.fetch(&back, None)?;
    ensure!(refused.status == 403, "{} {}", refused.status, refused.body);
    ensure!(
        refused.body.contains("mallory@elsewhere.test"),
        "{}",
        refused.body
    );
    ensure!(
        mallory.cookie("beamd_session").is_none(),
        "mallory got a session"
    );

    // Forged identity headers without a session: sent to sign in, never served.
    let stranger = Browser::new(&[&name])?.trusting(&ca);
    let forged = stranger.fetch_with(
        &format!("{base}/forged"),
        None,
        &[
            "-H",
            "X-Beamd-User: alice",
            "-H",
            "X-Beamd-Email: alice@example.test",
        ],
    )?;
    ensure!(forged.status == 302, "{}", forged.status);
    // Anything but a browser's GET is refused with 401, a WebSocket upgrade too.
    let post = stranger.fetch(&format!("{base}/forged"), Some("a=1"))?;
    ensure!(post.status == 401, "{}", post.status);
    let ws_headers = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "--http1.1",
        "--max-time",
        "3",
    ];
    let ws = stranger.fetch_with(&format!("{base}/ws"), None, &ws_headers)?;
    ensure!(ws.status == 401, "{}", ws.status);

    // A tampered session cookie is refused: the browser is sent to sign in.
    let cookie = alice.cookie("beamd_session").context("alice's cookie")?;
    let mut bytes = cookie.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes)?;
    let fresh = Browser::new(&[&name])?.trusting(&ca);
    let cookie_header = format!("Cookie: beamd_session={tampered}");
    let t = fresh.fetch_with(&format!("{base}/tampered"), None, &["-H", &cookie_header])?;
    ensure!(t.status == 302, "{} {}", t.status, t.body);

    // With a session, a WebSocket upgrade reaches the service.
    let ws = alice.fetch_with(&format!("{base}/ws"), None, &ws_headers);
    let ws_status = ws.map(|p| p.status).unwrap_or(101);
    ensure!(ws_status == 101, "{ws_status}");

    {
        let seen = seen.lock().unwrap();
        let paths: Vec<&str> = seen.iter().map(|r| r[0].as_str()).collect();
        ensure!(paths == ["/private", "/over-h2", "/ws"], "{paths:?}");
        ensure!(
            seen.iter()
                .all(|r| r[1] == "alice" && r[2] == "alice@example.test"),
            "{seen:?}"
        );
    }

    // The inspector records who signed in, and the refusals with why.
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let mut requests = serde_json::Value::Null;
    for _ in 0..50 {
        requests = api.get("/api/v1/requests?limit=100").await?.body;
        let n = requests["requests"].as_array().map_or(0, Vec::len);
        if n >= 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = requests["requests"].as_array().context("requests")?;
    let find = |path: &'static str| list.iter().filter(move |r| r["path"] == path);
    ensure!(
        find("/private?x=1").any(|r| r["user"] == "alice@example.test" && r["status"] == 200),
        "{requests}"
    );
    ensure!(
        find("/private?x=1").any(|r| r["refused"] == "sign_in" && r["status"] == 302),
        "{requests}"
    );
    ensure!(
        list.iter().any(|r| r["refused"] == "sign_in_not_allowed"
            && r["user"] == "mallory@elsewhere.test"
            && r["status"] == 403),
        "{requests}"
    );
    ensure!(
        find("/forged").all(|r| r["refused"] == "sign_in"),
        "{requests}"
    );
    ensure!(find("/forged").count() == 2, "{requests}");

    // Logout ends the session at the edge and goes on to the provider's.
    let out = alice.fetch(&format!("{base}/.beamd/oidc/logout"), None)?;
    ensure!(out.status == 302, "{}", out.status);
    let to = out.location.context("logout redirect")?;
    ensure!(to.starts_with(&provider.issuer), "{to}");
    ensure!(
        out.set_cookies
            .iter()
            .any(|c| c.starts_with("beamd_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        out.set_cookies
    );
    let after = alice.fetch(&format!("{base}/private"), None)?;
    ensure!(
        after.status == 302,
        "signed out, sent to sign in again: {}",
        after.status
    );
    Ok(())
}

/// Waits for `agent` to exit; its stderr.
async fn exit_of(agent: &mut Proc) -> Result<String> {
    ensure!(
        agent.exited_within(Duration::from_secs(30)).await?,
        "the agent kept running"
    );
    Ok(agent.stderr.lock().unwrap().join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_reaches_a_provider_only_where_its_egress_policy_allows() -> Result<()> {
    // No --egress-allow: the provider on the loopback is an internal
    // address, which a tenant must not make the edge fetch.
    let (dir, certs) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (edge, _) = edge_for_sign_in(dir.path(), certs.path(), false, &[])?;
    let port = edge.http.context("https")?.port();
    let callback = format!("https://web.localhost:{port}/.beamd/oidc/callback");
    let provider = OidcProvider::start("beamd", "s3cret", &callback)?;
    let secret = secret_file(dir.path())?;
    let args = oidc_args(&provider.issuer, &secret, &[]);
    let mut agent = spawn_http_agent(&edge, &args)?;
    let stderr = exit_of(&mut agent).await?;
    ensure!(
        stderr.contains("could not be discovered")
            && stderr.contains("refused")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let tunnels = api.get("/api/v1/tunnels").await?.body;
    ensure!(
        tunnels["tunnels"].as_array().is_some_and(Vec::is_empty),
        "nothing was opened: {tunnels}"
    );
    Ok(())
}

/// `beamd http` with `extra`, not waiting for its tunnel.
fn spawn_http_agent(edge: &Edge, extra: &[&str]) -> Result<Proc> {
    let token = edge.token.clone().context("token")?;
    let addr = edge.agent_addr.to_string();
    let mut args = vec![
        "http",
        "9",
        "--name",
        "web",
        "--edge",
        &addr,
        "--transport",
        "quic",
        "--fingerprint",
        &edge.fingerprint,
    ];
    args.extend_from_slice(extra);
    Proc::spawn(&args, &[("BEAMD_TOKEN", &token)])
}

#[test]
fn the_agent_refuses_sign_in_options_that_cannot_work() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let secret = secret_file(dir.path())?;
    let beamd = env!("CARGO_BIN_EXE_beamd");
    let run = |args: &[&str]| -> Result<(i32, String)> {
        let out = std::process::Command::new(beamd)
            .args(["http", "3000", "--edge", "127.0.0.1:9"])
            .args(args)
            .env("BEAMD_TOKEN", "tok_x.y")
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let cases: [(&[&str], &str); 4] = [
        (&["--oidc-issuer", "https://id.example"], "--oidc-client-id"),
        (&["--oidc-allow-email", "a@example.test"], "--oidc-issuer"),
        (
            &[
                "--oidc-issuer",
                "https://id.example",
                "--oidc-client-id",
                "c",
                "--oidc-client-secret-file",
                &secret,
                "--basic-auth",
                "u:p",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--oidc-issuer",
                "https://id.example",
                "--oidc-client-id",
                "c",
                "--oidc-client-secret-file",
                "/nonexistent/secret",
            ],
            "cannot read --oidc-client-secret-file /nonexistent/secret",
        ),
    ];
    for (args, expect) in cases {
        let (code, stderr) = run(args)?;
        ensure!(
            code != 0 && stderr.contains(expect),
            "{args:?}: {code} {stderr}"
        );
    }
    Ok(())
}

/// A hand-made hello asking a TCP tunnel to sign people in: the edge
/// refuses it with why, rather than open the port to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_tunnel_asked_to_sign_people_in_is_refused_not_opened_to_all() -> Result<()> {
    use beamd::protocol::{
        read_frame, write_frame, AgentFrame, EdgeFrame, Hello, SignInRequest, Token, TunnelRequest,
        PROTOCOL_VERSION,
    };
    use beamd_transports::{Connection, TcpTransport, Transport};
    let (_dir, edge) = crate::common::api::api_edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, tenant) = crate::common::api::tenant(&admin, "acme").await?;
    let made = crate::common::api::new_token(&tenant, "agent").await?;
    let token = made.body["token"].as_str().context("token")?.to_string();
    let conn = TcpTransport::plain().connect(edge.agent_addr).await?;
    let mut control = conn.open_stream().await?;
    let hello = AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token(token),
        tunnels: vec![TunnelRequest {
            protocol: beamd_events::vocabulary::TunnelProtocol::Tcp,
            local_addr: "127.0.0.1:9".into(),
            port: None,
            name: None,
            domain: None,
            basic_auth: None,
            allow: Vec::new(),
            inspect: None,
            upstream: Default::default(),
            tag: None,
            proxy_protocol: None,
            pool: false,
            sign_in: Some(Box::new(SignInRequest {
                issuer: "https://id.example".into(),
                client_id: "c".into(),
                client_secret: "s".into(),
                allow_emails: Vec::new(),
                allow_domains: Vec::new(),
            })),
        }],
        udp_datagrams: false,
    });
    write_frame(&mut control, &hello).await?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<EdgeFrame>(&mut control),
    )
    .await??;
    conn.close();
    let EdgeFrame::Error(e) = answer else {
        anyhow::bail!("not refused: {answer:?}");
    };
    ensure!(
        e.code == "invalid_request"
            && e.message
                .contains("sign-in (OpenID Connect) is for HTTP tunnels"),
        "{e:?}"
    );
    let tunnels = tenant.get("/api/v1/tunnels").await?.body;
    ensure!(
        tunnels["tunnels"].as_array().is_some_and(Vec::is_empty),
        "{tunnels}"
    );
    Ok(())
}

/// Edges given one `--sign-in-key-file` take each other's sessions (a
/// cluster behind one name); an edge with its own key does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_sharing_a_sign_in_key_take_each_others_sessions() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir()?;
    let key = root.path().join("sign-in.key");
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    std::fs::write(&key, bytes)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let key_arg = key.to_str().context("path")?;
    let mut edges = Vec::new();
    let mut bundle = String::new();
    for (i, shared) in [true, true, false].into_iter().enumerate() {
        let (dir, certs) = (
            root.path().join(format!("d{i}")),
            root.path().join(format!("c{i}")),
        );
        std::fs::create_dir_all(&certs)?;
        let extra: &[&str] = if shared {
            &["--sign-in-key-file", key_arg]
        } else {
            &[]
        };
        let (edge, cert) = edge_for_sign_in(&dir, &certs, true, extra)?;
        bundle.push_str(&std::fs::read_to_string(cert)?);
        edges.push(edge);
    }
    let ca = root.path().join("bundle.pem");
    std::fs::write(&ca, bundle)?;
    let ports: Vec<u16> = edges
        .iter()
        .map(|e| e.http.map(|h| h.port()).context("https"))
        .collect::<Result<_>>()?;
    let callback = format!("https://web.localhost:{}/.beamd/oidc/callback", ports[0]);
    let provider = OidcProvider::start("beamd", "s3cret", &callback)?;
    let (web, _seen) = recording_service().await?;
    let secret = secret_file(root.path())?;
    let args = oidc_args(&provider.issuer, &secret, &[]);
    let mut agents = Vec::new();
    for edge in &edges {
        agents.push(start_http_agent(edge, "quic", web, "web", &args)?);
    }
    let names: Vec<String> = ports.iter().map(|p| format!("web.localhost:{p}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let browser = Browser::new(&names)?.trusting(&ca);
    let first = browser.fetch(&format!("https://web.localhost:{}/private", ports[0]), None)?;
    let back = browser.sign_in(
        &first.location.context("redirect")?,
        &provider.issuer,
        "alice",
    )?;
    ensure!(
        browser.fetch(&back, None)?.status == 302,
        "signed in at the first edge"
    );
    // The cookie is the host's (any port): each edge gets it.
    let at = |i: usize| browser.fetch(&format!("https://web.localhost:{}/private", ports[i]), None);
    let second = at(1)?;
    ensure!(
        second.status == 200 && second.body.contains("email=alice@example.test"),
        "the edge sharing the key: {} {}",
        second.status,
        second.body
    );
    let third = at(2)?;
    ensure!(
        third.status == 302,
        "an edge with its own key sends to sign in: {}",
        third.status
    );
    // A key file others can read, or of the wrong length, stops the edge with why.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let spare = root.path().join("d9");
    let spare = spare.to_str().context("path")?;
    let refused_with = |why: &str| -> Result<()> {
        let out = crate::common::beamd(&[
            "edge",
            "--data-dir",
            spare,
            "--no-api",
            "--listen",
            "127.0.0.1:0",
            "--sign-in-key-file",
            key_arg,
        ]);
        let err = crate::common::text(&out.stderr);
        ensure!(!out.status.success() && err.contains(why), "{err}");
        Ok(())
    };
    refused_with("can be read by others")?;
    std::fs::write(&key, b"short")?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    refused_with("holds 5 bytes, not 32")?;
    drop(agents);
    Ok(())
}
