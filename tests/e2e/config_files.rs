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
            "edge = \"127.0.0.1:1\"\ntoken = \"tok_a.b\"\n[tunnels.web]\ntype = \"udp\"\nlocal_port = 3000\n",
            ":4:8: unknown variant `udp`, expected `http` or `tcp`",
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
    ];
    for (content, wanted) in cases {
        std::fs::write(&file, content)?;
        let out = beamd(&["start", "--config", path]);
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
    let out = beamd(&["start", "--config", path, "api"]);
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
