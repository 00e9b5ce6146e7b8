//! Pools: two agents behind one HTTP name, and two behind one TCP port,
//! each serving part of 1,000 requests (connections); one is killed
//! mid-run, and from the moment it has left the pool every request reaches
//! the survivor. The log, the API and the inspector name the member that
//! served each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::api::Api;
use crate::common::cluster::{eventually, tunnel_named};
use crate::common::http::{client, full, get, send, start_http_agent};
use crate::common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};

/// Requests (or connections) each test sends.
const TOTAL: usize = 1_000;
/// After how many of them one agent is killed.
const KILL_AT: usize = 400;
/// Clients sending at once.
const CLIENTS: usize = 4;

/// An HTTP service that answers every request with its own name.
async fn named_http(name: &'static str) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, hyper::Error>(Response::new(full(name)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// A TCP service that says its name, then echoes.
async fn named_echo(name: &'static str) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                if socket.write_all(name.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// What one request (or connection) got: when it started, and the member's
/// answer or the failure.
struct Outcome {
    started: Instant,
    answer: Result<String, String>,
}

/// Polls the API until the pool named `name` (or on `port`) has one member
/// serving; the moment it saw that.
async fn gone_at(api: &Api, find: Find) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = find.tunnel(api).await? {
            let serving = t["members"]
                .as_array()
                .map(|ms| ms.iter().filter(|m| m["status"] == "serving").count())
                .unwrap_or(0);
            if serving == 1 {
                return Ok(Instant::now());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the killed member never left the pool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a test finds its pool in `GET /tunnels`.
#[derive(Clone, Copy)]
enum Find {
    Name(&'static str),
    Port(u16),
}

impl Find {
    async fn tunnel(&self, api: &Api) -> Result<Option<serde_json::Value>> {
        match self {
            Find::Name(n) => tunnel_named(api, n).await,
            Find::Port(p) => {
                let list = api.get("/api/v1/tunnels").await?;
                Ok(list.body["tunnels"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|t| t["port"] == *p).cloned()))
            }
        }
    }
}

/// Checks a run: both served before the kill; every request that started
/// after the killed member was seen gone succeeded at the survivor; the
/// failures are few and all before that moment.
fn judge(outcomes: &[Outcome], gone: Instant, killed: &str, survivor: &str) -> Result<()> {
    ensure!(outcomes.len() == TOTAL, "{} of {TOTAL} ran", outcomes.len());
    let mut served: HashMap<&str, usize> = HashMap::new();
    let mut failed_before = 0;
    let mut after = 0;
    for o in outcomes {
        match (&o.answer, o.started >= gone) {
            (Ok(who), false) => *served.entry(who.as_str()).or_default() += 1,
            (Err(_), false) => failed_before += 1,
            (Ok(who), true) => {
                ensure!(who == survivor, "a request after the kill reached {who}");
                after += 1;
            }
            (Err(e), true) => anyhow::bail!("a request after the member left failed: {e}"),
        }
    }
    eprintln!(
        "served before the member left: {served:?}; failed before: {failed_before}; after: {after}, all by {survivor}"
    );
    ensure!(
        served.get(killed).copied().unwrap_or(0) > 0
            && served.get(survivor).copied().unwrap_or(0) > 0,
        "both members served before the kill: {served:?}"
    );
    ensure!(after > 0, "requests ran after the member left");
    // In flight on the killed member, or sent to it before its edge saw
    // its connection close: a few.
    ensure!(failed_before <= TOTAL / 20, "{failed_before} failed");
    Ok(())
}

/// An edge serving public HTTP over the `tcp` transport (a killed agent's
/// connection closes at once), and the admin's API.
fn http_edge(dir: &std::path::Path, extra: &[&str]) -> Result<(Edge, Api, SocketAddr)> {
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let edge = start_edge(dir, "tcp", "127.0.0.1:0", &args)?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let http = edge.http.context("http")?;
    Ok((edge, api, http))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_share_an_http_name_and_the_survivor_serves_all_once_one_is_killed() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let (edge, api, http) = http_edge(dir.path(), &[])?;
    let (a, b) = (named_http("a").await?, named_http("b").await?);
    let (mut agent_a, host, _) = start_http_agent(&edge, "tcp", a, "web", &["--pool"])?;
    let (_agent_b, host_b, _) = start_http_agent(&edge, "tcp", b, "web", &["--pool"])?;
    ensure!(host == host_b, "one name: {host} and {host_b}");
    let pool = tunnel_named(&api, "web").await?.context("the pool")?;
    ensure!(pool["pool"] == true, "{pool}");
    ensure!(
        pool["members"].as_array().map(Vec::len) == Some(2),
        "{pool}"
    );

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (outcomes, next, host) = (outcomes.clone(), next.clone(), host.clone());
        clients.push(tokio::spawn(async move {
            // A keep-alive connection, made again when a request fails on it.
            let mut conn = None;
            while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                let started = Instant::now();
                let answer = async {
                    if conn.is_none() {
                        conn = Some(client(http).await?);
                    }
                    let c = conn.as_mut().context("connection")?;
                    let (status, body) = send(c, get(&host, "/")?).await?;
                    ensure!(status == 200, "status {status}: {body}");
                    Ok(body)
                }
                .await
                .map_err(|e: anyhow::Error| {
                    conn = None;
                    e.to_string()
                });
                outcomes.lock().unwrap().push(Outcome { started, answer });
            }
        }));
    }
    // Kill agent a once KILL_AT requests were sent; see when it has left.
    while next.load(Ordering::SeqCst) < KILL_AT {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    agent_a.signal(rustix::process::Signal::KILL)?;
    let gone = gone_at(&api, Find::Name("web")).await?;
    for c in clients {
        c.await?;
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    judge(&outcomes, gone, "a", "b")?;
    ensure!(
        agent_a.exited_within(Duration::from_secs(5)).await?,
        "a was killed"
    );

    // The log says who served what: each member's share of the requests,
    // and the inspector names the member of each request.
    let shares = |t: &serde_json::Value| -> Vec<(String, u64)> {
        (t["members"].as_array().into_iter().flatten())
            .map(|m| {
                let status = m["status"].as_str().unwrap_or("").to_string();
                (status, m["requests"].as_u64().unwrap_or(0))
            })
            .collect()
    };
    eventually("each member's share of the requests", || async {
        let t = tunnel_named(&api, "web").await?.context("the pool")?;
        let total: u64 = shares(&t).iter().map(|(_, n)| n).sum();
        Ok(total >= (TOTAL - TOTAL / 20) as u64 && t["requests"].as_u64() == Some(total))
    })
    .await?;
    let shares = shares(&tunnel_named(&api, "web").await?.context("the pool")?);
    ensure!(shares.len() == 2, "{shares:?}");
    ensure!(
        shares.iter().any(|(s, n)| s == "left" && *n > 0),
        "{shares:?}"
    );
    let recent = api.get("/api/v1/requests?limit=200").await?;
    let members: std::collections::HashSet<String> = recent.body["requests"]
        .as_array()
        .context("requests")?
        .iter()
        .filter_map(|r| r["member"].as_str().map(str::to_string))
        .collect();
    ensure!(
        !members.is_empty(),
        "the inspector names members: {}",
        recent.body
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_share_a_tcp_port_and_the_survivor_takes_every_connection_once_one_is_killed(
) -> Result<()> {
    // A port of the edge's own: free now, the edge's only public TCP port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let range = format!("{port}-{port}");
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &["--tcp-ports", &range])?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let (a, b) = (named_echo("a").await?, named_echo("b").await?);
    let spawn = |local: u16| -> Result<Proc> {
        let (local, remote, addr) = (
            local.to_string(),
            port.to_string(),
            edge.agent_addr.to_string(),
        );
        let agent = Proc::spawn(
            &[
                "tcp",
                &local,
                "--pool",
                "--remote-port",
                &remote,
                "--edge",
                &addr,
                "--transport",
                "tcp",
                "--fingerprint",
                &edge.fingerprint,
            ],
            &[("BEAMD_TOKEN", ADMIN_TOKEN)],
        )?;
        agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
        Ok(agent)
    };
    let agent_a = spawn(a)?;
    let _agent_b = spawn(b)?;
    let public: SocketAddr = format!("127.0.0.1:{port}").parse()?;

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (outcomes, next) = (outcomes.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= TOTAL {
                    break;
                }
                let started = Instant::now();
                let answer = async {
                    let mut s = TcpStream::connect(public).await?;
                    let mut who = [0u8; 1];
                    s.read_exact(&mut who).await?;
                    let ping = format!("ping {c} {i}");
                    s.write_all(ping.as_bytes()).await?;
                    let mut back = vec![0u8; ping.len()];
                    s.read_exact(&mut back).await?;
                    ensure!(back == ping.as_bytes(), "echoed {back:?}");
                    Ok(String::from_utf8_lossy(&who).into_owned())
                }
                .await
                .map_err(|e: anyhow::Error| e.to_string());
                outcomes.lock().unwrap().push(Outcome { started, answer });
            }
        }));
    }
    while next.load(Ordering::SeqCst) < KILL_AT {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    agent_a.signal(rustix::process::Signal::KILL)?;
    let gone = gone_at(&api, Find::Port(port)).await?;
    for c in clients {
        c.await?;
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    judge(&outcomes, gone, "a", "b")?;
    // Each member's connections are counted apart.
    eventually("each member's share of the connections", || async {
        let t = Find::Port(port).tunnel(&api).await?.context("the pool")?;
        let per: Vec<u64> = t["members"]
            .as_array()
            .context("members")?
            .iter()
            .map(|m| m["connections"].as_u64().unwrap_or(0))
            .collect();
        Ok(per.len() == 2
            && per.iter().all(|n| *n > 0)
            && per.iter().sum::<u64>() == t["connections"].as_u64().unwrap_or(0))
    })
    .await?;
    Ok(())
}

/// `beamd http WEB --name NAME --pool` over TCP, started without waiting
/// for its tunnel (the edge may refuse it).
fn pool_member(edge: &Edge, web: u16, name: &str) -> Result<Proc> {
    let token = edge.token.clone().context("token")?;
    let (web, addr) = (web.to_string(), edge.agent_addr.to_string());
    Proc::spawn(
        &[
            "http",
            &web,
            "--name",
            name,
            "--pool",
            "--edge",
            &addr,
            "--transport",
            "tcp",
            "--fingerprint",
            &edge.fingerprint,
        ],
        &[("BEAMD_TOKEN", &token)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_and_a_lone_agent_do_not_take_each_others_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, _api, http) = http_edge(dir.path(), &[])?;
    let (a, b) = (named_http("a").await?, named_http("b").await?);
    let (_alone, host, _) = start_http_agent(&edge, "tcp", a, "solo", &[])?;
    // A pool member for a name one agent serves alone is refused, and the
    // lone agent goes on serving it.
    let mut member = pool_member(&edge, b, "solo")?;
    ensure!(
        member.exited_within(Duration::from_secs(20)).await?,
        "refused"
    );
    ensure!(member.stderr_contains("not a pool"), "says why");
    let mut c = client(http).await?;
    ensure!(
        send(&mut c, get(&host, "/")?).await? == (200, "a".into()),
        "still a's"
    );
    Ok(())
}

/// A pool has one set of access rules. The name here lets in only
/// 192.0.2.0/24, so this test's clients (127.0.0.1) are turned away; an
/// agent of the tenant joining without `--allow` would have served them its
/// share of the requests: it is refused, and every request is still turned
/// away. A member asking for the same rules, written otherwise, joins.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_asking_for_other_access_rules_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, api, http) = http_edge(dir.path(), &[])?;
    let (a, b, c) = (
        named_http("a").await?,
        named_http("b").await?,
        named_http("c").await?,
    );
    let guarded = ["--pool", "--allow", "192.0.2.0/24"];
    let (_first, host, _) = start_http_agent(&edge, "tcp", a, "guarded", &guarded)?;
    let statuses = || async {
        let mut seen = HashMap::new();
        for _ in 0..20 {
            // A connection per request: each is spread anew over the members.
            let mut conn = client(http).await?;
            let (status, body) = send(&mut conn, get(&host, "/")?).await?;
            *seen.entry(format!("{status} {body}")).or_insert(0) += 1;
        }
        anyhow::Ok(seen)
    };
    let before = statuses().await?;
    ensure!(before.keys().all(|k| k.starts_with("403 ")), "{before:?}");
    let mut open = pool_member(&edge, b, "guarded")?;
    // Refused (the agent exits), or, were it let in, a member of the pool.
    let mut exited = false;
    for _ in 0..200 {
        exited = open.exited_within(Duration::from_millis(100)).await?;
        let pool = tunnel_named(&api, "guarded").await?.context("the pool")?;
        if exited || pool["members"].as_array().map(Vec::len) == Some(2) {
            break;
        }
    }
    let after = statuses().await?;
    ensure!(
        after.keys().all(|k| k.starts_with("403 ")),
        "served past the pool's rules: {after:?}"
    );
    ensure!(exited, "a member without the pool's rules is refused");
    ensure!(open.stderr_contains("other access rules"), "says why");
    let same = ["--allow", "192.0.2.7/24", "--pool"];
    let (_same, _, _) = start_http_agent(&edge, "tcp", c, "guarded", &same)?;
    let pool = tunnel_named(&api, "guarded").await?.context("the pool")?;
    ensure!(
        pool["members"].as_array().map(Vec::len) == Some(2),
        "{pool}"
    );
    let both = statuses().await?;
    ensure!(both.keys().all(|k| k.starts_with("403 ")), "{both:?}");
    Ok(())
}

/// An HTTP service that answers with its name, and `/healthz` with 200 or,
/// while `sick` is set, 503.
async fn checked_http(name: &'static str, sick: Arc<AtomicBool>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let sick = sick.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let sick = sick.load(Ordering::SeqCst);
                    async move {
                        let mut resp = Response::new(full(name));
                        if req.uri().path() == "/healthz" && sick {
                            *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// Which members serve the pool named `name`, as the API says.
async fn serving(api: &Api, name: &str) -> Result<usize> {
    let t = tunnel_named(api, name).await?.context("the pool")?;
    Ok((t["members"].as_array().into_iter().flatten())
        .filter(|m| m["status"] == "serving")
        .count())
}

/// Who answers 20 requests, each on a connection of its own.
async fn answers(http: SocketAddr, host: &str) -> Result<HashMap<String, usize>> {
    let mut who = HashMap::new();
    for _ in 0..20 {
        let mut c = client(http).await?;
        let (status, body) = send(&mut c, get(host, "/")?).await?;
        ensure!(status == 200, "status {status}: {body}");
        *who.entry(body).or_default() += 1;
    }
    Ok(who)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_failing_its_health_check_leaves_the_pool_and_joins_again_when_it_passes(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, api, http) = http_edge(dir.path(), &[])?;
    let sick = Arc::new(AtomicBool::new(false));
    let (a, b) = (
        named_http("a").await?,
        checked_http("b", sick.clone()).await?,
    );
    let (_agent_a, host, _) = start_http_agent(&edge, "tcp", a, "checked", &["--pool"])?;
    let check = [
        "--pool",
        "--health-check",
        "/healthz",
        "--health-interval",
        "1",
    ];
    let (agent_b, _, _) = start_http_agent(&edge, "tcp", b, "checked", &check)?;
    let both = answers(http, &host).await?;
    ensure!(both.len() == 2, "both serve: {both:?}");

    sick.store(true, Ordering::SeqCst);
    eventually("b says it leaves", || async {
        Ok(agent_b.stderr_contains("leaving the pool"))
    })
    .await?;
    eventually("b leaves the pool", || async {
        Ok(serving(&api, "checked").await? == 1)
    })
    .await?;
    let only = answers(http, &host).await?;
    ensure!(only.keys().collect::<Vec<_>>() == ["a"], "only a: {only:?}");

    sick.store(false, Ordering::SeqCst);
    eventually("b says it joins again", || async {
        Ok(agent_b.stderr_contains("joining the pool"))
    })
    .await?;
    eventually("b joins again", || async {
        Ok(serving(&api, "checked").await? == 2)
    })
    .await?;
    let again = answers(http, &host).await?;
    ensure!(again.len() == 2, "both serve again: {again:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn members_on_different_transports_share_one_pool() -> Result<()> {
    // The edge serves all three transports; each member connects over its own.
    let dir = tempfile::tempdir()?;
    let more = [
        "--transport",
        "quic",
        "--listen",
        "127.0.0.1:0",
        "--transport",
        "ws",
        "--listen",
        "127.0.0.1:0",
    ];
    let (mut edge, api, http) = http_edge(dir.path(), &more)?;
    let names: [&'static str; 3] = ["q", "w", "t"];
    let mut agents = Vec::new();
    let mut host = String::new();
    for (name, transport) in names.into_iter().zip(["quic", "ws", "tcp"]) {
        let web = named_http(name).await?;
        let at = (edge.listeners.iter())
            .find(|(t, _)| t == transport)
            .context("listener")?
            .1;
        edge.agent_addr = at;
        let (agent, h, _) = start_http_agent(&edge, transport, web, "mixed", &["--pool"])?;
        agents.push(agent);
        host = h;
    }
    let t = tunnel_named(&api, "mixed").await?.context("the pool")?;
    let transports: std::collections::BTreeSet<&str> =
        (t["members"].as_array().into_iter().flatten())
            .filter_map(|m| m["transport"].as_str())
            .collect();
    ensure!(transports.len() == 3, "one member per transport: {t}");
    let mut who: HashMap<String, usize> = HashMap::new();
    for _ in 0..60 {
        let mut c = client(http).await?;
        let (status, body) = send(&mut c, get(&host, "/")?).await?;
        ensure!(status == 200, "status {status}: {body}");
        *who.entry(body).or_default() += 1;
    }
    ensure!(
        who.len() == 3 && who.values().all(|n| *n >= 10),
        "spread over all three: {who:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_files_health_check_takes_its_member_out_and_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (edge, api, http) = http_edge(dir.path(), &[])?;
    let sick = Arc::new(AtomicBool::new(false));
    let (a, b) = (
        named_http("a").await?,
        checked_http("b", sick.clone()).await?,
    );
    let (_agent_a, host, _) = start_http_agent(&edge, "tcp", a, "filed", &["--pool"])?;
    let file = dir.path().join("beamd.toml");
    std::fs::write(
        &file,
        format!(
            "edge = \"{}\"\ntransport = \"tcp\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [tunnels.filed]\ntype = \"http\"\nlocal_port = {b}\npool = true\n\
             health_check = \"/healthz\"\nhealth_interval = 1\n",
            edge.agent_addr
        ),
    )?;
    let path = file.to_str().context("path")?;
    let agent_b = Proc::spawn(&["start", "--config", path], &[])?;
    agent_b.expect("beamd start: filed: tunnel http", Duration::from_secs(30))?;
    eventually("both serve", || async {
        Ok(answers(http, &host).await?.len() == 2)
    })
    .await?;
    sick.store(true, Ordering::SeqCst);
    eventually("b leaves the pool", || async {
        Ok(serving(&api, "filed").await? == 1)
    })
    .await?;
    let only = answers(http, &host).await?;
    ensure!(only.keys().collect::<Vec<_>>() == ["a"], "only a: {only:?}");
    ensure!(agent_b.stderr_contains("leaving the pool"), "b says why");
    sick.store(false, Ordering::SeqCst);
    eventually("b joins again", || async {
        Ok(serving(&api, "filed").await? == 2)
    })
    .await?;
    Ok(())
}
