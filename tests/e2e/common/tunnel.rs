//! Real edges, real agents and a real echo server, as processes on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A child process killed when dropped, whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// Everything it wrote to stderr so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = beamd_testkit::tools::with_default_umask(env!("CARGO_BIN_EXE_beamd"));
        cmd.args(args)
            .env("BEAMD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let stderr_pipe = child.stderr.take().context("stderr")?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Ok(mut all) = collected.lock() {
                    all.push(line);
                }
            }
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            stderr,
        })
    }

    /// The first line containing `needle`, waiting up to `wait`.
    pub fn expect(&self, needle: &str, wait: Duration) -> Result<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => continue,
                Err(_) => bail!("no line containing {needle:?} within {wait:?}"),
            }
        }
    }

    /// Whether any stderr line so far contains `needle`.
    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .map(|l| l.iter().any(|x| x.contains(needle)))
            .unwrap_or(false)
    }

    /// Waits up to `within` for the process to exit; whether it did.
    pub async fn exited_within(&mut self, within: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + within;
        while self.child.try_wait()?.is_none() {
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(true)
    }

    pub fn signal(&self, signal: rustix::process::Signal) -> Result<()> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).context("pid")?;
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running edge and what it printed.
pub struct Edge {
    pub proc: Proc,
    pub agent_addr: SocketAddr,
    pub api: SocketAddr,
    /// The public HTTP listener, with --http-listen.
    pub http: Option<SocketAddr>,
    pub fingerprint: String,
    pub token: Option<String>,
    /// Each agent listener: its transport (`quic`, `ws`, `tcp`) and address.
    pub listeners: Vec<(String, SocketAddr)>,
}

pub const ADMIN_TOKEN: &str = "tok_testadmin.0123456789abcdef0123456789abcdef";

/// Starts `beamd edge` on `dir` serving one transport on `listen`.
pub fn start_edge(dir: &Path, transport: &str, listen: &str, extra: &[&str]) -> Result<Edge> {
    start_edge_env(dir, transport, listen, extra, &[])
}

/// An edge serving public HTTPS (`--http-listen` on an ephemeral port)
/// with a certificate for `name` made in `certs`; returns the edge and the
/// certificate's fingerprint.
pub fn https_edge(dir: &Path, certs: &Path, name: &str, transport: &str) -> Result<(Edge, String)> {
    use beamd_transports::tls::EdgeIdentity;
    let (identity, _) = EdgeIdentity::load_or_create(certs, &[name.to_string()])?;
    let cert = certs.join("edge-cert.pem");
    let key = certs.join("edge-key.pem");
    let args = [
        "--http-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().context("path")?,
        "--tls-key",
        key.to_str().context("path")?,
    ];
    let edge = start_edge(dir, transport, "127.0.0.1:0", &args)?;
    Ok((edge, identity.fingerprint()))
}

/// `start_edge` with more environment (`BEAMD_LOG`, say).
pub fn start_edge_env(
    dir: &Path,
    transport: &str,
    listen: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Edge> {
    let d = dir.to_str().context("dir")?;
    let mut args = vec![
        "edge",
        "--data-dir",
        d,
        "--transport",
        transport,
        "--listen",
        listen,
        "--public-host",
        "127.0.0.1",
        "--traffic-window-ms",
        "200",
        "--api-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut envs = vec![("BEAMD_ADMIN_TOKEN", ADMIN_TOKEN)];
    envs.extend_from_slice(env);
    edge_up(Proc::spawn(&args, &envs)?)
}

/// Waits for an edge process to say it is up, and reads its addresses from
/// what it printed.
pub fn edge_up(proc: Proc) -> Result<Edge> {
    let (mut agent_addr, mut api, mut http, mut fingerprint) = (None, None, None, None);
    let mut listeners = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match proc.lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("the edge was not up within 60 s"),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the edge exited before it was up"),
        };
        let last = || line.rsplit(' ').next().context("addr");
        if line.contains(" up; ") {
            break;
        } else if line.contains("listening api on") {
            api = Some(last()?.parse::<SocketAddr>()?);
        } else if line.contains("listening http on") || line.contains("listening https on") {
            http = Some(last()?.parse::<SocketAddr>()?);
        } else if line.contains("listening") {
            let addr = last()?.parse::<SocketAddr>()?;
            let transport = line.split(' ').nth(3).context("transport")?;
            listeners.push((transport.to_string(), addr));
            agent_addr.get_or_insert(addr);
        } else if line.contains("fingerprint") {
            fingerprint = line.split(' ').nth(4).map(str::to_string);
        }
    }
    Ok(Edge {
        proc,
        agent_addr: agent_addr.context("no agent listener")?,
        api: api.context("no API listener")?,
        http,
        fingerprint: fingerprint.context("no fingerprint")?,
        token: Some(ADMIN_TOKEN.to_string()),
        listeners,
    })
}

impl Edge {
    /// Whether the edge process is still running.
    pub fn proc_alive(&mut self) -> bool {
        matches!(self.proc.child.try_wait(), Ok(None))
    }
}

/// A running agent and the public port it got.
pub struct Agent {
    pub proc: Proc,
    pub public: SocketAddr,
}

/// Starts `beamd tcp LOCAL` against an edge.
pub fn start_agent(edge: &Edge, transport: &str, local_port: u16, extra: &[&str]) -> Result<Agent> {
    let local = local_port.to_string();
    let addr = edge.agent_addr.to_string();
    let mut args = vec![
        "tcp",
        &local,
        "--edge",
        &addr,
        "--transport",
        transport,
        "--fingerprint",
        &edge.fingerprint,
    ];
    args.extend_from_slice(extra);
    let token = edge.token.clone().context("token")?;
    let proc = Proc::spawn(&args, &[("BEAMD_TOKEN", &token)])?;
    let line = proc.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    let public = parse_public(&line)?;
    Ok(Agent { proc, public })
}

/// The `host:port` of a `beamd tcp: tunnel tcp://HOST:PORT -> …` line.
pub fn parse_public(line: &str) -> Result<SocketAddr> {
    let url = line.split("tcp://").nth(1).context("url")?;
    let hostport = url.split(' ').next().context("hostport")?;
    Ok(hostport.parse()?)
}

/// An echo server on 127.0.0.1; returns its port.
pub async fn echo_server() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// Deterministic bytes for connection `i`.
pub fn pattern(i: usize, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i as u64 + 1);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Sends `data` through `addr` and checks the echo, byte for byte.
pub async fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Result<()> {
    let socket = tokio::net::TcpStream::connect(addr).await?;
    let (mut r, mut w) = socket.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await?;
        w.shutdown().await?;
        anyhow::Ok(())
    });
    let mut back = Vec::with_capacity(data.len());
    r.read_to_end(&mut back).await?;
    writer.await??;
    if back != data {
        let first = back.iter().zip(&data).position(|(a, b)| a != b);
        bail!(
            "echo differs: {} of {} bytes back, first difference at {first:?}",
            back.len(),
            data.len()
        );
    }
    Ok(())
}
