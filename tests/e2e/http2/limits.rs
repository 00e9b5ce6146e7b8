//! The public ingress's HTTP/2 limits, seen from the wire: the SETTINGS the
//! edge announces (defaults, then values set by its flags), a rapid-reset
//! flood (HEADERS then RST_STREAM, many times, in one burst) answered with
//! GOAWAY ENHANCE_YOUR_CALM while the edge goes on serving others, and a
//! header list past the limit refused with 431.

use crate::common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::http::{http_server, start_http_agent};
use common::tunnel::start_edge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A GET of `/` for `host`, in HPACK: indexed `:method GET`, `:scheme
/// http`, `:path /`, then `:authority` as a literal (not indexed).
fn get_headers(host: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, host.len() as u8];
    block.extend_from_slice(host.as_bytes());
    block
}

/// Reads the next frame: its type, flags and payload; `None` at the end.
async fn read_frame(s: &mut TcpStream) -> Result<Option<(u8, u8, Vec<u8>)>> {
    let mut head = [0u8; 9];
    match tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut head)).await {
        Err(_) => bail!("no frame from the edge in 20 s"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Ok(r) => r?,
    };
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).await?;
    Ok(Some((head[3], head[4], payload)))
}

/// Opens an HTTP/2 connection with prior knowledge and returns the
/// server's first SETTINGS, as (identifier, value) pairs.
async fn open(public: std::net::SocketAddr) -> Result<(TcpStream, Vec<(u16, u32)>)> {
    let mut s = TcpStream::connect(public).await?;
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await?;
    loop {
        let (kind, flags, payload) = read_frame(&mut s).await?.context("closed early")?;
        if kind == SETTINGS && flags & 0x1 == 0 {
            let settings = payload
                .chunks_exact(6)
                .map(|c| {
                    let id = u16::from_be_bytes([c[0], c[1]]);
                    (id, u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
                })
                .collect();
            return Ok((s, settings));
        }
    }
}

fn setting(settings: &[(u16, u32)], id: u16) -> Option<u32> {
    settings.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
}

/// curl's status code for a GET through the public port (HTTP/2, prior knowledge).
async fn curl_status(host: &str, public: std::net::SocketAddr, extra: &[&str]) -> Result<String> {
    let name = host.split(':').next().context("name")?;
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "20",
            "-w",
            "%{http_code}",
        ])
        .args(["--http2-prior-knowledge", "--resolve"])
        .arg(format!("{name}:{}:127.0.0.1", public.port()))
        .args(extra)
        .arg(format!("http://{host}/hello"))
        .output()
        .await
        .context("curl")?;
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_ends_its_connection_and_the_edge_serves_on() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let args = ["--http-listen", "127.0.0.1:0"];
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &args)?;
    let (_agent, host, public) = start_http_agent(&edge, "tcp", web, "calm", &[])?;
    let (mut s, settings) = open(public).await?;
    // The documented defaults: 128 streams, a 32 KiB header list.
    assert_eq!(setting(&settings, 0x3), Some(128), "{settings:?}");
    assert_eq!(setting(&settings, 0x6), Some(32 << 10), "{settings:?}");
    // 200 streams opened and reset at once, far past the 20 allowed.
    let mut burst = Vec::new();
    for i in 0..200u32 {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, END_HEADERS, id, &get_headers(&host)));
        burst.extend(frame(RST_STREAM, 0, id, &0x8u32.to_be_bytes()));
    }
    s.write_all(&burst).await?;
    let mut goaway = None;
    while let Some((kind, _, payload)) = read_frame(&mut s).await? {
        if kind == GOAWAY {
            goaway = Some(u32::from_be_bytes(payload[4..8].try_into()?));
        }
    }
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "GOAWAY, then the end");
    // Other clients are served as before.
    assert_eq!(curl_status(&host, public, &[]).await?, "200");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_follow_the_flags_and_a_large_header_list_gets_431() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let args = [
        "--http-listen",
        "127.0.0.1:0",
        "--h2-max-streams",
        "7",
        "--h2-max-header-list",
        "4096",
    ];
    let edge = start_edge(dir.path(), "ws", "127.0.0.1:0", &args)?;
    let (_agent, host, public) = start_http_agent(&edge, "ws", web, "small", &[])?;
    let (_s, settings) = open(public).await?;
    assert_eq!(setting(&settings, 0x3), Some(7), "{settings:?}");
    assert_eq!(setting(&settings, 0x6), Some(4096), "{settings:?}");
    let big = format!("x-big: {}", "b".repeat(6000));
    assert_eq!(curl_status(&host, public, &["-H", &big]).await?, "431");
    let fits = format!("x-fits: {}", "f".repeat(1000));
    assert_eq!(curl_status(&host, public, &["-H", &fits]).await?, "200");
    ensure!(
        std::process::Command::new(env!("CARGO_BIN_EXE_beamd"))
            .args(["edge", "--h2-max-streams", "0"])
            .output()?
            .status
            .code()
            == Some(2),
        "0 streams is refused"
    );
    Ok(())
}
