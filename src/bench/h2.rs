//! `beamd bench h2`: HTTP/2 requests per second and latency (p50, p99) by
//! h2load (Debian's nghttp2-client), through an HTTP tunnel (the service
//! reached over h2c, then over HTTP/1.1) against the same h2c service
//! reached directly, in one run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use beamd_events::vocabulary::TransportKind;

use super::http::Figures;

/// Options of `beamd bench h2`.
#[derive(Debug, Clone)]
pub struct H2BenchOptions {
    /// Concurrent HTTP/2 connections (h2load -c).
    pub clients: usize,
    /// Concurrent streams per connection (h2load -m).
    pub streams: usize,
    /// Seconds each path is measured (after a one-second warm-up).
    pub seconds: u64,
    /// The agent's transport.
    pub transport: TransportKind,
    /// The tunnel's inspect mode.
    pub inspect: String,
}

/// The number before `unit` on h2load's line starting with `line`.
fn number_before(out: &str, line: &str, unit: &str) -> Option<f64> {
    let l = out.lines().find(|l| l.trim_start().starts_with(line))?;
    let words: Vec<_> = l.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let at = words.iter().position(|w| *w == unit)?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// Runs h2load at `addr` with `authority`; every request must succeed.
async fn h2load(
    args: &H2BenchOptions,
    addr: SocketAddr,
    authority: &str,
    log: &Path,
) -> Result<Figures> {
    let out = tokio::process::Command::new("h2load")
        .args([
            "-c",
            &args.clients.to_string(),
            "-m",
            &args.streams.to_string(),
        ])
        .args([
            "-D",
            &args.seconds.max(1).to_string(),
            "--warm-up-time",
            "1",
        ])
        .args(["-H", &format!(":authority: {authority}")])
        .arg(format!("--log-file={}", log.display()))
        .arg(format!("http://{addr}/"))
        .output()
        .await
        .context("cannot run h2load (Debian: apt-get install nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "h2load failed: {text}");
    let failed = number_before(&text, "requests:", "failed").context("h2load's requests line")?;
    let ok = number_before(&text, "status codes:", "2xx").context("h2load's status line")?;
    anyhow::ensure!(failed == 0.0 && ok > 0.0, "h2load saw failures: {text}");
    let per_sec = number_before(&text, "finished in", "req/s").context("h2load's rate")?;
    // The log: start (µs since the epoch), status, microseconds to the end of the response.
    let mut micros: Vec<u64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    micros.sort_unstable();
    let at = |q: f64| {
        let i = ((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1));
        Duration::from_micros(micros.get(i).copied().unwrap_or_default())
    };
    Ok(Figures {
        per_sec,
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Runs `beamd bench h2`.
pub async fn run(args: H2BenchOptions) -> Result<ExitCode> {
    let service = super::http::service(true).await?;
    let base = std::env::temp_dir().join(format!("beamd-bench-h2-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&base)?;
    let result = async {
        eprintln!("bench: direct");
        let direct = h2load(&args, service, "direct", &base.join("direct.log")).await?;
        println!(
            "| path (h2load, {} connections x {} streams, {} s) | requests/s | vs direct | p50 | p99 |",
            args.clients, args.streams, args.seconds
        );
        println!("|---|---:|---:|---:|---:|");
        let row = |name: &str, f: &Figures| f.row(name, &direct);
        row("direct loopback (h2c)", &direct);
        let kind = args.transport.as_str();
        for upstream in ["h2c", "http1"] {
            eprintln!("bench: through beamd over {kind}, service over {upstream}");
            let dir = base.join(upstream);
            let agent = ["--inspect", &args.inspect, "--upstream", upstream];
            let (edge, agent, public) =
                super::http::tunnel(&dir, service, args.transport, &agent, "")?;
            let authority = format!("bench.localhost:{}", public.port());
            let log = base.join(format!("{upstream}.log"));
            let figures = h2load(&args, public, &authority, &log).await?;
            let label = format!(
                "beamd over {kind}, service over {upstream}, inspect {}",
                args.inspect
            );
            row(&label, &figures);
            drop((agent, edge));
        }
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&base);
    result.map(|_| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_h2loads_summary() {
        let out = "finished in 5.00s, 41234.60 req/s, 1.23MB/s\n\
            requests: 206173 total, 206273 started, 206173 done, 206170 succeeded, 3 failed, 3 errored, 0 timeout\n\
            status codes: 206170 2xx, 0 3xx, 0 4xx, 0 5xx\n";
        assert_eq!(number_before(out, "finished in", "req/s"), Some(41234.60));
        assert_eq!(number_before(out, "requests:", "failed"), Some(3.0));
        assert_eq!(number_before(out, "status codes:", "2xx"), Some(206170.0));
        assert_eq!(number_before(out, "nothing", "2xx"), None);
    }
}
