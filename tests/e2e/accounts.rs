//! Accounts end to end: sign-up, sign-in (a JWT that works wherever keys
//! do), failed sign-ins rate limited, a reset mail caught by a local SMTP
//! sink whose link resets the password once and only once, and sign-up
//! turned off.

use crate::common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::{error_of, Api};
use common::tunnel::start_edge;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A minimal SMTP server on 127.0.0.1 that hands every message's data over.
async fn smtp_sink() -> Result<(u16, mpsc::UnboundedReceiver<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            let _ = tx.send(std::mem::take(body));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    Ok((port, rx))
}

fn public(api: &Api) -> Api {
    Api {
        addr: api.addr,
        token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_sign_in_and_reset_by_mail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (smtp, mut mails) = smtp_sink().await?;
    let relay = format!("127.0.0.1:{smtp}");
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--smtp-relay",
            &relay,
            "--public-url",
            "https://beamd.example",
        ],
    )?;
    let admin = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let anon = public(&admin);

    let body = r#"{"name":"Ann","email":"Ann@Example.org","password":"correct horse"}"#;
    let made = anon
        .send("POST", "/api/v1/auth/register", Some(body))
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let tenant = made.body["tenantId"]
        .as_str()
        .context("tenantId")?
        .to_string();
    ensure!(
        made.body["gatewayApiKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("tok_")),
        "{}",
        made.text
    );
    let twice = anon
        .send("POST", "/api/v1/auth/register", Some(body))
        .await?;
    ensure!(
        twice.status == 409 && error_of(&twice) == "conflict",
        "{}",
        twice.text
    );
    let short = anon
        .send(
            "POST",
            "/api/v1/auth/register",
            Some(r#"{"name":"B","email":"b@example.org","password":"short"}"#),
        )
        .await?;
    ensure!(short.status == 400, "{}", short.text);

    // The sign-in token works wherever keys do, for the account's tenant only.
    let login =
        |password: &str| format!(r#"{{"email":"ann@example.org","password":"{password}"}}"#);
    let signed = anon
        .send("POST", "/api/v1/auth/login", Some(&login("correct horse")))
        .await?;
    ensure!(
        signed.status == 200 && signed.body["tenantId"] == tenant.as_str(),
        "{}",
        signed.text
    );
    let jwt = signed.body["token"].as_str().context("token")?;
    let ann = Api::new(admin.addr, jwt);
    let ws = ann.get("/api/v1/workspace").await?;
    ensure!(
        ws.status == 200 && ws.body["id"] == tenant.as_str(),
        "{}",
        ws.text
    );
    let svc = ann
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"s","tunnel":"web"}"#),
        )
        .await?;
    ensure!(svc.status == 201, "a JWT may manage: {}", svc.text);
    let forged = Api::new(admin.addr, &format!("{jwt}x"));
    let a = forged.get("/api/v1/workspace").await?;
    ensure!(a.status == 401, "{}", a.text);

    // Failed sign-ins: five, then 429 with Retry-After, even with the right password.
    for i in 0..5 {
        let a = anon
            .send("POST", "/api/v1/auth/login", Some(&login("wrong")))
            .await?;
        ensure!(a.status == 401, "failure {i}: {}", a.text);
    }
    let limited = anon
        .send("POST", "/api/v1/auth/login", Some(&login("correct horse")))
        .await?;
    ensure!(
        limited.status == 429 && error_of(&limited) == "rate_limited",
        "{}",
        limited.text
    );

    // Reset: always 200; a mail for a real account only.
    let nobody = anon
        .send(
            "POST",
            "/api/v1/auth/forgot-password",
            Some(r#"{"email":"nobody@example.org"}"#),
        )
        .await?;
    let forgot = anon
        .send(
            "POST",
            "/api/v1/auth/forgot-password",
            Some(r#"{"email":"ann@example.org"}"#),
        )
        .await?;
    ensure!(
        nobody.status == 200 && forgot.status == 200,
        "{} {}",
        nobody.text,
        forgot.text
    );
    ensure!(
        nobody.body == forgot.body,
        "the answers do not tell who has an account"
    );
    let mail = tokio::time::timeout(Duration::from_secs(20), mails.recv())
        .await?
        .context("the sink got no mail")?;
    ensure!(mail.contains("ann@example.org"), "{mail}");
    let unfolded = mail.replace("=\n", "").replace("=3D", "=");
    let Some(at) = unfolded.find("https://beamd.example/reset-password?token=") else {
        bail!("no link in {mail}");
    };
    let token: String = unfolded[at..]
        .split("token=")
        .nth(1)
        .context("token")?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let reset = format!(r#"{{"token":"{token}","password":"battery staple"}}"#);
    let a = anon
        .send("POST", "/api/v1/auth/reset-password", Some(&reset))
        .await?;
    ensure!(a.status == 200, "{}", a.text);
    let again = anon
        .send("POST", "/api/v1/auth/reset-password", Some(&reset))
        .await?;
    ensure!(
        again.status == 403 && error_of(&again) == "forbidden",
        "used twice: {}",
        again.text
    );
    ensure!(
        tokio::time::timeout(Duration::from_millis(500), mails.recv())
            .await
            .is_err(),
        "no mail for an address without an account"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_can_be_turned_off_and_mail_off_is_said() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &["--no-signup"])?;
    // stderr is read on its own thread: give it a moment.
    let mut said = false;
    for _ in 0..50 {
        said = edge.proc.stderr_contains("mail is off");
        if said {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(said, "the edge says mail is off");
    let anon = Api {
        addr: edge.api,
        token: None,
    };
    let a = anon
        .send(
            "POST",
            "/api/v1/auth/register",
            Some(r#"{"name":"A","email":"a@example.org","password":"long enough"}"#),
        )
        .await?;
    ensure!(a.status == 403 && error_of(&a) == "forbidden", "{}", a.text);
    Ok(())
}

/// The reset token in a mail caught by the sink.
fn reset_token(mail: &str) -> Result<String> {
    let unfolded = mail.replace("=\n", "").replace("=3D", "=");
    let at = unfolded
        .find("/reset-password?token=")
        .with_context(|| format!("no link in {mail}"))?;
    Ok(unfolded[at..]
        .split("token=")
        .nth(1)
        .context("token")?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_and_a_sign_out_end_earlier_sign_in_tokens() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (smtp, mut mails) = smtp_sink().await?;
    let relay = format!("127.0.0.1:{smtp}");
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &["--smtp-relay", &relay])?;
    let anon = Api {
        addr: edge.api,
        token: None,
    };
    let body = r#"{"name":"Ann","email":"ann@example.org","password":"correct horse"}"#;
    let made = anon
        .send("POST", "/api/v1/auth/register", Some(body))
        .await?;
    ensure!(made.status == 201, "{}", made.text);
    let signup_jwt = made.body["token"].as_str().context("token")?.to_string();
    let login =
        |password: &str| format!(r#"{{"email":"ann@example.org","password":"{password}"}}"#);
    let signed = anon
        .send("POST", "/api/v1/auth/login", Some(&login("correct horse")))
        .await?;
    ensure!(signed.status == 200, "{}", signed.text);
    let stolen = Api::new(edge.api, signed.body["token"].as_str().context("token")?);
    ensure!(stolen.get("/api/v1/workspace").await?.status == 200);

    // A reset ends every sign-in token issued before it.
    let forgot = anon
        .send(
            "POST",
            "/api/v1/auth/forgot-password",
            Some(r#"{"email":"ann@example.org"}"#),
        )
        .await?;
    ensure!(forgot.status == 200, "{}", forgot.text);
    let mail = tokio::time::timeout(Duration::from_secs(20), mails.recv())
        .await?
        .context("the sink got no mail")?;
    let reset = format!(
        r#"{{"token":"{}","password":"battery staple"}}"#,
        reset_token(&mail)?
    );
    let a = anon
        .send("POST", "/api/v1/auth/reset-password", Some(&reset))
        .await?;
    ensure!(a.status == 200, "{}", a.text);
    for (what, jwt) in [
        ("sign-in", &stolen),
        ("sign-up", &Api::new(edge.api, &signup_jwt)),
    ] {
        let a = jwt.get("/api/v1/workspace").await?;
        ensure!(
            a.status == 401 && error_of(&a) == "unauthorized",
            "a {what} token from before the reset still works: {}",
            a.text
        );
    }

    // Signing out ends the token presented, and only that one.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let signed = anon
            .send("POST", "/api/v1/auth/login", Some(&login("battery staple")))
            .await?;
        ensure!(signed.status == 200, "{}", signed.text);
        tokens.push(Api::new(
            edge.api,
            signed.body["token"].as_str().context("token")?,
        ));
    }
    let feed = open_feed(edge.api, tokens[0].token.as_deref().context("token")?).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(!feed.is_finished(), "the feed is open before the sign-out");
    let out = tokens[0].send("POST", "/api/v1/auth/logout", None).await?;
    ensure!(out.status == 200, "{}", out.text);
    tokio::time::timeout(Duration::from_secs(3), feed)
        .await
        .context("the signed-out token's event feed went on")??;
    let a = tokens[0].get("/api/v1/workspace").await?;
    ensure!(
        a.status == 401,
        "a signed-out token still works: {}",
        a.text
    );
    let a = tokens[1].get("/api/v1/workspace").await?;
    ensure!(a.status == 200, "the other sign-in still works: {}", a.text);
    let again = tokens[0].send("POST", "/api/v1/auth/logout", None).await?;
    ensure!(again.status == 401, "{}", again.text);
    let spec = anon.get("/api/v1/openapi.json").await?;
    ensure!(
        spec.body["paths"]["/api/v1/auth/logout"]["post"].is_object(),
        "the OpenAPI document has the route"
    );

    // The session ends are in the log, and the log replays to the same state.
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    let d = dir.path().to_str().context("dir")?;
    let replay = common::text(&common::beamd(&["replay", "--data-dir", d]).stdout);
    ensure!(
        replay.contains("SessionEnded"),
        "no SessionEnded in the log"
    );
    let audit = common::beamd(&["audit", "--data-dir", d]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

/// Opens `/events/stream` with `token` (`Connection: close`); the task ends
/// when the edge ends the stream.
async fn open_feed(api: std::net::SocketAddr, token: &str) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(api).await?;
    let req = format!(
        "GET /api/v1/events/stream?maxSeconds=600 HTTP/1.1\r\nhost: {api}\r\n\
         authorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    ensure!(
        &head == b"HTTP/1.1 200",
        "feed: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }))
}
