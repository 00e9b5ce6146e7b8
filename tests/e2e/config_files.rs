//! `beamd start`: many tunnels from one config file over one connection, a
//! tunnel refused alone, reload on SIGHUP under live traffic, and strict
//! parsing that names the line and column.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::common::api::{metric, new_token, Api};
use crate::common::cluster::eventually;
use crate::common::http::{client, get, http_server, send};
use crate::common::tunnel::{
    echo_server, parse_public, pattern, round_trip, start_edge, Edge, Proc, ADMIN_TOKEN,
};
use crate::common::{beamd, text};

/// The file's connection part, for `edge` over TCP.
fn head(edge: &Edge, token_file: &Path) -> String {
    format!(
        "edge = \"{}\"\ntransport = \"tcp\"\ntoken_file = \"{}\"\n",
        edge.agent_addr,
        token_file.display()
    )
}

fn http_table(tag: &str, port: u16) -> String {
    format!("\n[tunnels.{tag}]\ntype = \"http\"\nlocal_port = {port}\n")
}

fn tcp_table(tag: &str, port: u16) -> String {
    format!("\n[tunnels.{tag}]\ntype = \"tcp\"\nlocal_port = {port}\n")
}

/// An edge serving HTTP tunnels, with its admin token in a file.
fn edge_and_token(dir: &Path) -> Result<(Edge, std::path::PathBuf)> {
    let edge = start_edge(
        &dir.join("edge"),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let token_file = dir.join("agent.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n"))?;
    Ok((edge, token_file))
}

/// The `host:port` of an HTTP tunnel line: `… tunnel http://HOST:PORT -> …`.
fn http_host(line: &str) -> Result<String> {
    Ok(line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .context("url")?
        .to_string())
}

/// One GET of /hello through the edge's public HTTP port for `host`.
async fn hello(public: SocketAddr, host: &str) -> Result<u16> {
    let mut c = client(public).await?;
    Ok(send(&mut c, get(host, "/hello")?).await?.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_tunnels_over_one_connection_and_one_refused_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, token_file) = edge_and_token(dir.path())?;
    let public = edge.http.context("http listener")?;
    let (web, echo) = (http_server().await?, echo_server().await?);
    // Another key of the tenant holds the name `held`.
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let other = new_token(&admin, "other").await?;
    let other = other.body["token"].as_str().context("token")?.to_string();
    let (w, addr) = (web.to_string(), edge.agent_addr.to_string());
    let holder = Proc::spawn(
        &[
            "http",
            &w,
            "--name",
            "held",
            "--edge",
            &addr,
            "--transport",
            "tcp",
        ],
        &[("BEAMD_TOKEN", &other)],
    )?;
    holder.expect("beamd http: tunnel http", Duration::from_secs(30))?;

    let file = dir.path().join("beamd.toml");
    let text = head(&edge, &token_file)
        + &http_table("site", web)
        + &http_table("held", web)
        + &tcp_table("echo", echo);
    std::fs::write(&file, text)?;
    let agent = Proc::spawn(&["start", "--config", file.to_str().context("path")?], &[])?;
    let site =
        http_host(&agent.expect("beamd start: site: tunnel http://", Duration::from_secs(30))?)?;
    let echo_public =
        parse_public(&agent.expect("beamd start: echo: tunnel tcp://", Duration::from_secs(30))?)?;
    eventually("the refusal of `held` on stderr", || async {
        Ok(agent.stderr_contains("beamd start: held: the edge refused http held: conflict"))
    })
    .await?;
    ensure!(
        hello(public, &site).await? == 200,
        "the HTTP tunnel does not serve"
    );
    round_trip(echo_public, pattern(1, 256 * 1024)).await?;
    // Both over one connection: the holder's and this agent's, two in all.
    ensure!(
        metric(edge.api, "beamd_agent_sessions").await? == 2,
        "not one connection per agent"
    );
    // `held` still serves the other key's agent.
    let held = site.replacen("site.", "held.", 1);
    ensure!(
        hello(public, &held).await? == 200,
        "the held name stopped serving"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_and_removes_tunnels_under_live_traffic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, token_file) = edge_and_token(dir.path())?;
    let public = edge.http.context("http listener")?;
    let (web, echo) = (http_server().await?, echo_server().await?);
    let file = dir.path().join("beamd.toml");
    let path = file.to_str().context("path")?.to_string();
    std::fs::write(
        &file,
        head(&edge, &token_file) + &http_table("site", web) + &tcp_table("echo", echo),
    )?;
    let agent = Proc::spawn(&["start", "--config", &path], &[])?;
    let site =
        http_host(&agent.expect("beamd start: site: tunnel http://", Duration::from_secs(30))?)?;
    let echo_public =
        parse_public(&agent.expect("beamd start: echo: tunnel tcp://", Duration::from_secs(30))?)?;
    round_trip(echo_public, pattern(2, 4096)).await?;

    // Requests on `site` without a pause, on fresh connections and one kept alive.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (stop, ok, failed, site) = (stop.clone(), ok.clone(), failed.clone(), site.clone());
        tokio::spawn(async move {
            let mut kept = client(public).await.ok();
            while !stop.load(Ordering::Relaxed) {
                let fresh = hello(public, &site).await;
                let alive = match kept.as_mut() {
                    Some(c) => send(c, get(&site, "/hello").expect("request"))
                        .await
                        .map(|r| r.0),
                    None => Err(anyhow::anyhow!("no keep-alive connection")),
                };
                for answer in [fresh, alive] {
                    match answer {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Remove `echo`, add `docs`; `site` is unchanged.
    std::fs::write(
        &file,
        head(&edge, &token_file) + &http_table("site", web) + &http_table("docs", web),
    )?;
    agent.signal(rustix::process::Signal::HUP)?;
    let docs =
        http_host(&agent.expect("beamd start: docs: tunnel http://", Duration::from_secs(30))?)?;
    ensure!(
        hello(public, &docs).await? == 200,
        "the added tunnel does not serve"
    );
    eventually("the removed TCP tunnel's port closed", || async {
        Ok(round_trip(echo_public, pattern(3, 1024)).await.is_err())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    ensure!(
        ok > 20 && failed == 0,
        "{ok} requests served, {failed} failed across the reload"
    );
    ensure!(
        metric(edge.api, "beamd_agent_sessions").await? == 1,
        "the reload reconnected"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_on_reload_keeps_the_running_tunnels() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, token_file) = edge_and_token(dir.path())?;
    let public = edge.http.context("http listener")?;
    let web = http_server().await?;
    let file = dir.path().join("beamd.toml");
    let path = file.to_str().context("path")?.to_string();
    let good = head(&edge, &token_file) + &http_table("site", web);
    std::fs::write(&file, &good)?;
    let agent = Proc::spawn(&["start", "--config", &path], &[])?;
    let site =
        http_host(&agent.expect("beamd start: site: tunnel http://", Duration::from_secs(30))?)?;

    // A misspelt key on line 8, column 1.
    std::fs::write(&file, good.clone() + "lcoal_port = 1\n")?;
    agent.signal(rustix::process::Signal::HUP)?;
    let said = format!("beamd start: reload refused (the running tunnels stay as they are): {path}:8:1: unknown field `lcoal_port`");
    eventually("the refusal on stderr", || async {
        Ok(agent.stderr_contains(&said))
    })
    .await?;
    ensure!(
        hello(public, &site).await? == 200,
        "the tunnel stopped after a broken reload"
    );

    // The edge cannot change without a restart: named in the refusal.
    let moved = good.replace(&edge.agent_addr.to_string(), "127.0.0.1:1");
    std::fs::write(&file, moved)?;
    agent.signal(rustix::process::Signal::HUP)?;
    let said = "reload refused (the running tunnels stay as they are): edge cannot change without a restart";
    eventually("the fixed key named", || async {
        Ok(agent.stderr_contains(said))
    })
    .await?;
    ensure!(
        hello(public, &site).await? == 200,
        "the tunnel stopped after a refused reload"
    );
    Ok(())
}

/// `beamd ARGS`, which must exit within 20 s: a file taken by mistake
/// would have it run, and the test fail instead of wait.
fn refused(args: &[&str]) -> Result<std::process::Output> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args(args)
        .env("BEAMD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            anyhow::bail!("{args:?} ran instead of refusing: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

#[test]
fn parse_errors_name_the_line_and_column() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("beamd.toml");
    let path = file.to_str().context("path")?;
    let cases: &[(&str, &str)] = &[
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = \"3000\"\n",
            ":5:14: invalid type: string \"3000\", expected u16",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"sctp\"\nlocal_port = 3000\n",
            ":4:8: unknown variant `sctp`, expected one of `http`, `tcp`, `udp`",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\nname = \"x\"\n",
            ":6:8: name is for http tunnels; this one is not",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\ntoken_env = \"T\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\n",
            ":3:13: give token one way: token, token_file or token_env",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 3000\nallow = [\"10.0.0.0/33\"]\n",
            ":6:9: ",
        ),
        ("edge = \"127.0.0.1:1\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 3000\n", ": no token: set token, token_file or token_env"),
        ("edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web\n", ":3:13: "),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 3000\nproxy_protocol = \"v2\"\n",
            ":6:18: proxy_protocol is for tcp tunnels; this one is not",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 80\nhealth_check = \"/healthz\"\n",
            ":6:16: health_check is for pool members: set pool = true",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\nremote_port = 25432\npool = true\nhealth_check = \"/x\"\n",
            ":8:16: a TCP tunnel's health_check is \"connect\"",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.dns]\ntype = \"udp\"\nlocal_port = 53\npool = true\n",
            ":6:8: pool is for http and tcp tunnels; this one is not",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\npool = true\n",
            ":6:8: a TCP pool is named by its port: pool = true needs remote_port",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\nproxy_protocol = \"v3\"\n",
            ":6:18: unknown variant `v3`, expected `v1` or `v2`",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 80\noidc_issuer = \"https://id.example\"\noidc_client_id = \"c\"\n",
            ":6:15: sign-in needs oidc_issuer, oidc_client_id and oidc_client_secret (or _file, _env) together",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 80\noidc_allow_domain = [\"example.com\"]\n",
            ":6:21: oidc_allow_email and oidc_allow_domain need oidc_issuer",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 80\noidc_issuer = \"https://id.example\"\noidc_client_id = \"c\"\noidc_client_secret = \"s\"\noidc_allow_email = [\"alice\"]\n",
            ":6:15: \"alice\" is not an email address",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 80\nbasic_auth = \"u:p\"\noidc_issuer = \"https://id.example\"\noidc_client_id = \"c\"\noidc_client_secret = \"s\"\n",
            ":7:15: a tunnel has basic auth or OpenID sign-in, not both",
        ),
        (
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.db]\ntype = \"tcp\"\nlocal_port = 5432\noidc_issuer = \"https://id.example\"\n",
            ":6:15: oidc_issuer is for http tunnels; this one is not",
        ),
    ];
    for (content, wanted) in cases {
        std::fs::write(&file, content)?;
        let out = refused(&["start", "--config", path])?;
        let err = text(&out.stderr);
        ensure!(!out.status.success(), "{content:?} was taken");
        ensure!(err.lines().count() == 1, "not one line: {err}");
        let wanted = format!("beamd: error: {path}{wanted}");
        ensure!(
            err.starts_with(&wanted),
            "{content:?}:\n  said   {err}\n  wanted {wanted}"
        );
    }
    // A NAME the file does not have.
    std::fs::write(&file, "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"http\"\nlocal_port = 3000\n")?;
    let out = refused(&["start", "--config", path, "api"])?;
    let err = text(&out.stderr);
    ensure!(err.contains("no tunnel \"api\" (it has web)"), "{err}");
    Ok(())
}

#[test]
fn the_readme_agent_file_parses() -> Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let block = readme
        .split("<!-- agent-file -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /agent-file -->").next())
        .context("the README's agent-file block")?;
    let example: String = block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    ensure!(example.matches("[tunnels.").count() == 3, "{example}");
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("agent.token"), "tok_a.secret\n")?;
    std::fs::write(dir.path().join("api.pass"), "user:pass\n")?;
    // Nothing listens at the edge it names: the file is taken, the edge is not reached.
    let content = example
        .replace("edge.example.com:4443", "127.0.0.1:1")
        .replace("\"quic\"", "\"tcp\"")
        .replace("\"…\"", &format!("\"{}\"", "00".repeat(32)))
        .replacen("transport", "max_retries = 1\ntransport", 1);
    let file = dir.path().join("beamd.toml");
    std::fs::write(&file, content)?;
    let out = beamd(&["start", "--config", file.to_str().context("path")?]);
    let err = text(&out.stderr);
    ensure!(!err.contains("beamd: error"), "{err}");
    ensure!(err.contains("giving up after 1 failed attempts"), "{err}");
    Ok(())
}

/// An edge file for a TCP-transport edge on ephemeral ports, its admin
/// token from a file beside it.
fn edge_file(dir: &Path, extra: &str) -> Result<std::path::PathBuf> {
    std::fs::write(dir.join("admin.token"), format!("{ADMIN_TOKEN}\n"))?;
    let file = dir.join("edge.toml");
    let text = format!(
        "data_dir = \"{}\"\ntransport = [\"tcp\"]\nlisten = [\"127.0.0.1:0\"]\npublic_host = \"127.0.0.1\"\n\
         api_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ntraffic_window_ms = 200\n\
         admin_token_file = \"admin.token\"\n{extra}",
        dir.join("data").display()
    );
    std::fs::write(&file, text)?;
    Ok(file)
}

fn edge_from(file: &Path) -> Result<Edge> {
    let proc = Proc::spawn(&["edge", "--config", file.to_str().context("path")?], &[])?;
    let mut edge = crate::common::tunnel::edge_up(proc)?;
    edge.token = Some(ADMIN_TOKEN.to_string());
    Ok(edge)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_file_serves_as_its_flags_do() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = edge_file(dir.path(), "")?;
    let edge = edge_from(&file)?;
    let (web, echo) = (http_server().await?, echo_server().await?);
    let agent_file = dir.path().join("beamd.toml");
    std::fs::write(dir.path().join("agent.token"), format!("{ADMIN_TOKEN}\n"))?;
    std::fs::write(
        &agent_file,
        head(&edge, &dir.path().join("agent.token"))
            + &http_table("site", web)
            + &http_table("docs", web)
            + &tcp_table("echo", echo),
    )?;
    let agent = Proc::spawn(
        &["start", "--config", agent_file.to_str().context("path")?],
        &[],
    )?;
    let wait = Duration::from_secs(30);
    let site = http_host(&agent.expect("beamd start: site: tunnel http://", wait)?)?;
    let docs = http_host(&agent.expect("beamd start: docs: tunnel http://", wait)?)?;
    let echo_public = parse_public(&agent.expect("beamd start: echo: tunnel tcp://", wait)?)?;
    // All three over one connection.
    ensure!(
        metric(edge.api, "beamd_agent_sessions").await? == 1,
        "not one connection"
    );
    ensure!(
        hello(edge.http.context("http")?, &docs).await? == 200,
        "the second HTTP tunnel"
    );
    // The admin token came from the file the edge file names: the API takes it.
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    ensure!(
        admin.get("/api/v1/tunnels").await?.status == 200,
        "the admin token from the file"
    );
    ensure!(
        hello(edge.http.context("http")?, &site).await? == 200,
        "HTTP through a file-configured edge"
    );
    round_trip(echo_public, pattern(4, 64 * 1024)).await?;
    // The tunnel is metered as on any edge.
    let direction = "beamd_tunnel_bytes_total{direction=\"in\"}";
    crate::common::cluster::eventually_within(
        "the bytes recorded",
        Duration::from_secs(3),
        || async { Ok(metric(edge.api, direction).await? >= 64 * 1024) },
    )
    .await?;
    Ok(())
}

#[test]
fn print_config_shows_sources_and_masks_secrets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = edge_file(
        dir.path(),
        "tcp_ports = \"30000-30009\"\nmask_header = [\"X-A\"]\n",
    )?;
    let path = file.to_str().context("path")?;
    let out = beamd(&[
        "edge",
        "--config",
        path,
        "--print-config",
        "--tcp-ports",
        "31000-31009",
    ]);
    let printed = text(&out.stdout);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(
        !printed.contains(ADMIN_TOKEN) && !printed.contains("0123456789abcdef"),
        "{printed}"
    );
    for line in [
        "# admin_token: set (masked)",
        "tcp_ports = \"31000-31009\"  # command line",
        "mask_header = [\"X-A\"]  # file",
        "traffic_window_ms = 200  # file",
        "grace_secs = 60  # default",
    ] {
        ensure!(
            printed.lines().any(|l| l == line),
            "no {line:?} in\n{printed}"
        );
    }
    // The printed configuration, secrets aside, is itself a file the edge takes.
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed)?;
    let out = beamd(&[
        "edge",
        "--config",
        again.to_str().context("path")?,
        "--print-config",
    ]);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(
        text(&out.stdout).contains("tcp_ports = \"31000-31009\"  # file"),
        "{}",
        text(&out.stdout)
    );
    // A bad value: one line naming file, line and column.
    std::fs::write(&file, "tcp_ports = \"9-1\"\n")?;
    let out = beamd(&["edge", "--config", path]);
    let err = text(&out.stderr);
    ensure!(!out.status.success() && err.lines().count() == 1, "{err}");
    ensure!(
        err.starts_with(&format!(
            "beamd: error: {path}:1:13: tcp_ports: invalid value '9-1'"
        )),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_reload_changes_live_settings_and_refuses_the_rest() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, r#"{"tokens": []}"#)?;
    let live = format!(
        "tokens = \"{}\"\nmax_tenant_connections = 100\n",
        tokens.display()
    );
    let file = edge_file(dir.path(), &live)?;
    let edge = edge_from(&file)?;
    let echo = echo_server().await?;
    let addr = edge.agent_addr.to_string();
    let late = "tok_late.0123456789abcdef0123456789abcdef";
    let e = echo.to_string();
    let tcp_agent = |token: &str| {
        Proc::spawn(
            &[
                "tcp",
                &e,
                "--edge",
                &addr,
                "--transport",
                "tcp",
                "--max-retries",
                "1",
            ],
            &[("BEAMD_TOKEN", token)],
        )
    };
    // A token the tokens file does not hold yet is refused.
    let mut refused = tcp_agent(late)?;
    ensure!(
        refused.exited_within(Duration::from_secs(20)).await?,
        "an unknown token was let in"
    );

    // Reload: the tokens file now holds it, and the cap is one connection.
    std::fs::write(&tokens, format!(r#"{{"tokens": [{{"token": "{late}"}}]}}"#))?;
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)?
            .replace("max_tenant_connections = 100", "max_tenant_connections = 1"),
    )?;
    edge.proc.signal(rustix::process::Signal::HUP)?;
    edge.proc.expect(
        "beamd edge: reloaded the configuration; 1 new token(s)",
        Duration::from_secs(20),
    )?;
    let agent = tcp_agent(late)?;
    let public = parse_public(&agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?)?;
    // One connection held open; a second is turned away at the new cap.
    let mut held = tokio::net::TcpStream::connect(public).await?;
    tokio::io::AsyncWriteExt::write_all(&mut held, b"x").await?;
    let mut one = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut held, &mut one).await?;
    ensure!(
        round_trip(public, pattern(5, 1024)).await.is_err(),
        "the cap of 1 did not hold"
    );
    drop(held);
    eventually("a connection once the held one closed", || async {
        Ok(round_trip(public, pattern(6, 1024)).await.is_ok())
    })
    .await?;

    // A listen address cannot change live: refused by name, the edge serves on.
    let text_now = std::fs::read_to_string(&file)?;
    std::fs::write(
        &file,
        text_now.replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]"),
    )?;
    edge.proc.signal(rustix::process::Signal::HUP)?;
    let said = "beamd edge: reload refused (the running configuration stays): listen cannot change while the edge runs (restart to apply)";
    eventually("the fixed key named", || async {
        Ok(edge.proc.stderr_contains(said))
    })
    .await?;
    // A broken file: refused with its line and column.
    std::fs::write(&file, text_now.clone() + "max_tenant_connection = 5\n")?;
    edge.proc.signal(rustix::process::Signal::HUP)?;
    let path = file.display().to_string();
    eventually("the broken file refused", || async {
        Ok(edge.proc.stderr_contains(&format!(
            "reload refused (the running configuration stays): {path}:"
        )))
    })
    .await?;
    ensure!(
        edge.proc
            .stderr_contains("unknown key `max_tenant_connection`"),
        "no reason given"
    );
    round_trip(public, pattern(7, 1024)).await?;
    Ok(())
}

#[test]
fn the_systemd_units_verify() -> Result<()> {
    crate::common::tools::debian(&["/usr/bin/systemd-analyze"], &["systemd"])?;
    let dir = tempfile::tempdir()?;
    for unit in ["beamd-edge.service", "beamd-agent.service"] {
        let text = std::fs::read_to_string(
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/").to_string() + unit,
        )?;
        ensure!(
            text.contains("ExecStart=/usr/local/bin/beamd "),
            "{unit}: ExecStart"
        );
        ensure!(
            text.contains("NoNewPrivileges=yes") && text.contains("ProtectSystem=strict"),
            "{unit}: hardening"
        );
        // Where the binary is installed is the one thing that differs here.
        let here = text.replace("/usr/local/bin/beamd", env!("CARGO_BIN_EXE_beamd"));
        let path = dir.path().join(unit);
        std::fs::write(&path, here)?;
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()?;
        ensure!(
            out.status.success() && out.stderr.is_empty(),
            "{unit}: {}",
            text_of_out(&out)
        );
    }
    let edge = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/systemd/beamd-edge.service"
    ))?;
    ensure!(
        edge.contains("StateDirectory=beamd")
            && edge.contains("CapabilityBoundingSet=CAP_NET_BIND_SERVICE"),
        "edge unit"
    );
    // The example config files beside them parse.
    let out = beamd(&[
        "edge",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/edge.toml"),
        "--print-config",
    ]);
    ensure!(out.status.success(), "edge.toml: {}", text(&out.stderr));
    Ok(())
}

fn text_of_out(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
