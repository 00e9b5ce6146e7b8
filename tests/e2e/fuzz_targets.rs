//! The cargo-fuzz targets in `fuzz/` (control frames, stored event records,
//! host and route parsing) each run for a bounded time, from seeds taken from
//! real traffic: a real edge's event log, real encoded frames, real hosts and
//! routes. Any crash, panic or failed property fails the test, naming the
//! input libFuzzer saved. `BEAMD_FUZZ_SECS` sets the time per target (30 s).
//!
//! cargo-fuzz is installed when missing (`cargo install cargo-fuzz`); it
//! passes `-Z` flags to rustc, which the stable toolchain takes with
//! `RUSTC_BOOTSTRAP=1`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use beamd::data_dir::DataDir;
use beamd::protocol::{
    write_frame, AgentFrame, AssignedTunnel, EdgeFrame, ErrorFrame, Hello, RefusedTunnel,
    StreamHeader, Token, TunnelRequest, PROTOCOL_VERSION,
};
use beamd_events::vocabulary::TunnelProtocol;
use common::api::{new_token, tenant, Api};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};

const TARGETS: [&str; 3] = ["control_frame", "event_record", "host_route"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn cargo() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.env("RUSTC_BOOTSTRAP", "1").current_dir(fuzz_dir());
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(text)
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// Every record a real edge wrote (tenants, tokens, a tunnel and its
/// traffic, node events), as event-record seeds: mode byte 1, then the body.
async fn event_seeds(dir: &Path) -> Result<usize> {
    let data = tempfile::tempdir()?;
    {
        let edge = start_edge(data.path(), "tcp", "127.0.0.1:0", &[])?;
        let admin = Api::new(edge.api, ADMIN_TOKEN);
        let (_, other) = tenant(&admin, "fuzzseed").await?;
        new_token(&other, "seed").await?;
        let echo = echo_server().await?;
        let agent = start_agent(&edge, "tcp", echo, &[])?;
        round_trip(agent.public, pattern(1, 10_000)).await?;
        drop(agent);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let data = DataDir::open_existing(data.path())?;
    let store = data.log_store()?;
    let mut n = 0;
    use beamd_events::log::Store as _;
    for (_, value) in store.scan(1, store.last_seq()?, usize::MAX)? {
        // [format:1][prev_hash:32][hash:32][body]
        let mut seed = vec![1u8];
        seed.extend_from_slice(value.get(65..).context("a record's body")?);
        write_seed(dir, &format!("record-{n}"), &seed)?;
        write_seed(dir, &format!("raw-{n}"), &[&[0u8][..], &value].concat())?;
        n += 1;
    }
    ensure!(n > 5, "the seed edge wrote only {n} records");
    Ok(n)
}

/// Each kind of control frame, encoded, behind its kind byte.
async fn frame_seeds(dir: &Path) -> Result<()> {
    let hello = AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token("tok_abc.0123456789abcdef".into()),
        tunnels: vec![TunnelRequest {
            protocol: TunnelProtocol::Http,
            local_addr: "127.0.0.1:3000".into(),
            port: Some(20_000),
            name: Some("app".into()),
            domain: Some("app.example.com".into()),
            basic_auth: Some("user:pass".into()),
            allow: vec!["10.0.0.0/8".into()],
            inspect: None,
            upstream: Default::default(),
            tag: None,
            proxy_protocol: None,
            pool: false,
            sign_in: None,
        }],
        udp_datagrams: true,
    });
    let mut agent = Vec::new();
    write_frame(&mut agent, &hello).await?;
    write_frame(&mut agent, &AgentFrame::Heartbeat).await?;
    if let AgentFrame::Hello(hello) = &hello {
        write_frame(&mut agent, &AgentFrame::Open(hello.tunnels[0].clone())).await?;
    }
    let close = AgentFrame::Close {
        tunnel: "tun_1".into(),
    };
    write_frame(&mut agent, &close).await?;
    write_seed(dir, "agent", &[&[0u8][..], &agent].concat())?;

    let assigned = EdgeFrame::Welcome {
        session: "ses_1".into(),
        node: "node_1".into(),
        tunnels: vec![AssignedTunnel {
            id: "tun_1".into(),
            protocol: TunnelProtocol::Tcp,
            public: "tcp://127.0.0.1:20000".into(),
            port: Some(20_000),
            local_addr: "127.0.0.1:3000".into(),
            aliases: vec!["https://app.example.com".into()],
            notice: Some("waiting for DNS".into()),
            tag: Some("web".into()),
        }],
        refused: vec![RefusedTunnel {
            tag: Some("db".into()),
            asked: "tcp :5432".into(),
            error: ErrorFrame {
                code: "conflict".into(),
                message: "held by another key".into(),
            },
        }],
    };
    let mut edge = Vec::new();
    write_frame(&mut edge, &assigned).await?;
    if let EdgeFrame::Welcome {
        tunnels, refused, ..
    } = &assigned
    {
        write_frame(&mut edge, &EdgeFrame::Opened(tunnels[0].clone())).await?;
        write_frame(&mut edge, &EdgeFrame::TunnelRefused(refused[0].clone())).await?;
    }
    let closed = EdgeFrame::Closed {
        tunnel: "tun_1".into(),
    };
    write_frame(&mut edge, &closed).await?;
    write_frame(
        &mut edge,
        &EdgeFrame::Error(ErrorFrame {
            code: "quota_exceeded".into(),
            message: "over".into(),
        }),
    )
    .await?;
    write_seed(dir, "edge", &[&[1u8][..], &edge].concat())?;

    let mut header = Vec::new();
    write_frame(
        &mut header,
        &StreamHeader {
            tunnel: "tun_1".into(),
            peer: "203.0.113.9:51000".into(),
            public: Some("192.0.2.1:20000".into()),
            flow: None,
        },
    )
    .await?;
    write_seed(dir, "header", &[&[2u8][..], &header].concat())
}

fn host_seeds(dir: &Path) -> Result<()> {
    for (i, seed) in [
        "App.Example.COM:8080\n/users/:id/*\n/users/42/posts",
        "[::1]:443\n/\n/",
        "a.localhost\n/v1/orders/:order/items/:item\n/v1/orders/7/items/9",
        "x:1:2\n/static/*\n//static///a",
    ]
    .iter()
    .enumerate()
    {
        write_seed(dir, &format!("seed-{i}"), seed.as_bytes())?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzz_targets_find_nothing() -> Result<()> {
    let secs: u64 = std::env::var("BEAMD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let work = tempfile::tempdir()?;
    let seeds = work.path().join("seeds");
    let records = event_seeds(&seeds.join("event_record")).await?;
    frame_seeds(&seeds.join("control_frame")).await?;
    host_seeds(&seeds.join("host_route"))?;

    common::tools::cargo_fuzz(env!("CARGO"))?;
    run(cargo().args(["fuzz", "build"]), "cargo fuzz build")?;
    // Building is like any compile on the machine; fuzzing takes a core
    // flat out for a while, so it waits for the heavy tests' turn.
    let _turn = common::turns::heavy().await;
    for target in TARGETS {
        let corpus = work.path().join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let artifacts = work.path().join("artifacts").join(target);
        std::fs::create_dir_all(&artifacts)?;
        let out = run(
            cargo().args(["fuzz", "run", target]).arg(&corpus).arg(seeds.join(target)).args([
                "--".to_string(),
                format!("-max_total_time={secs}"),
                "-rss_limit_mb=2048".to_string(),
                format!("-artifact_prefix={}/", artifacts.display()),
            ]),
            &format!("fuzz target {target}"),
        )
        .with_context(|| {
            format!(
                "the failing input is in {}; reproduce with `cargo fuzz run {target} FILE` in fuzz/",
                artifacts.display()
            )
        })?;
        let done = out
            .lines()
            .find(|l| l.starts_with("Done "))
            .context("libFuzzer's closing line")?;
        eprintln!("{target}: {done}");
    }
    eprintln!("event_record started from {records} records of a real edge");
    Ok(())
}
