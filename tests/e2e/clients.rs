//! Clients no one here wrote, against a live edge: what their users would
//! run. A tool that is missing is installed (PyPI into a venv under
//! target/, Debian's packages with apt-get); a failed install fails the
//! test: it never skips.
//!
//! - schemathesis fuzzes the server from its own `/api/v1/openapi.json`,
//!   with a valid key and every one of its checks, on every operation (the
//!   event stream included), and must find nothing.
//! - A browser's CORS preflight and cross-origin reads, as Chromium sends
//!   them, get `Access-Control-Allow-Origin: *`.
//! - promtool (Prometheus's own linter, from Debian's `prometheus`) reads
//!   `/metrics` after real traffic and must find nothing to complain of;
//!   every family of the edge's metric catalog must be there, each label
//!   set with it.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use beamd::metric_catalog::{self, Family, Kind};
use std::sync::{Arc, Mutex};

use common::api::Api;
use common::dns::dns_server;
use common::http::{client, get, http_server, send, start_http_agent};
use common::tools;
use common::tunnel::{start_edge, ADMIN_TOKEN};

const VERSION: &str = "4.32.5";

/// The schemathesis executable, installed under target/ if it is not there yet.
fn schemathesis() -> Result<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv");
    tools::schemathesis(&venv, VERSION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_with_all_its_checks_finds_nothing() -> Result<()> {
    let exe = tokio::task::spawn_blocking(schemathesis).await??;
    // Domain checks ask this server, never one off the machine.
    let dns = dns_server("app.example.test", Arc::new(Mutex::new(String::new()))).await?;
    let resolver = format!("127.0.0.1:{dns}");
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--dns-resolver", &resolver],
    )?;
    let schema = format!("http://{}/api/v1/openapi.json", edge.api);
    let mut run = Command::new(exe);
    run.current_dir(dir.path())
        .args(["run", &schema, "-H"])
        .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"))
        .args([
            "--checks",
            "all",
            "--max-time",
            "60",
            "--workers",
            "1",
            "--seed",
            "1",
        ]);
    let out = tokio::task::spawn_blocking(move || run.output()).await??;
    let text = String::from_utf8_lossy(&out.stdout);
    // From the first failure's report on (a stateful failure's steps come
    // before the summary), else the summary alone.
    let from = text
        .find("=== FAILURES")
        .or_else(|| text.find("=== SUMMARY"))
        .unwrap_or(0);
    let tail = &text[text[..from].rfind('\n').map_or(0, |n| n + 1)..];
    ensure!(
        out.status.success(),
        "schemathesis failed:\n{tail}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(text.contains("passed"), "{tail}");
    Ok(())
}

/// The methods the document gives any path.
fn documented_methods(doc: &serde_json::Value) -> Vec<String> {
    let mut methods: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.keys())
        .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
        .map(|m| m.to_ascii_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

fn header<'a>(a: &'a common::api::Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// What Chromium sends before a cross-origin `DELETE` with a bearer token,
/// and the reads that follow: every answer, errors included, allows any
/// origin with `*`, never one origin by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_preflight_and_its_requests_get_allow_origin_star() -> Result<()> {
    use common::api::call;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let origin = "http://dashboard.example.test:5173";
    let doc = call(edge.api, "GET", "/api/v1/openapi.json", None, None, &[]).await?;
    let methods = documented_methods(&doc.body);
    ensure!(methods.len() >= 4, "{methods:?}");
    for method in &methods {
        let pre = call(
            edge.api,
            "OPTIONS",
            "/api/v1/tokens/tok_x",
            None,
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
                ("sec-fetch-mode", "cors"),
            ],
        )
        .await?;
        ensure!(
            (200..300).contains(&pre.status),
            "preflight for {method}: {}",
            pre.status
        );
        ensure!(
            header(&pre, "access-control-allow-origin") == "*",
            "preflight for {method}: {:?}",
            pre.headers
        );
        let allowed = header(&pre, "access-control-allow-methods").to_ascii_uppercase();
        ensure!(
            allowed.split(',').any(|m| m.trim() == method),
            "{method} is not allowed: {allowed}"
        );
        let headers = header(&pre, "access-control-allow-headers").to_ascii_lowercase();
        for h in ["authorization", "content-type"] {
            ensure!(headers.contains(h), "{h} is not allowed: {headers}");
        }
    }
    // The answers themselves: a read, a refusal, a missing route, a wrong method.
    let answers = [
        ("GET", "/api/v1/workspace", Some(ADMIN_TOKEN)),
        ("GET", "/api/v1/workspace", None),
        ("GET", "/api/v1/nothing-here", Some(ADMIN_TOKEN)),
        ("PUT", "/api/v1/workspace", Some(ADMIN_TOKEN)),
    ];
    for (method, path, token) in answers {
        let a = call(edge.api, method, path, token, None, &[("origin", origin)]).await?;
        ensure!(
            header(&a, "access-control-allow-origin") == "*",
            "{method} {path} ({}): {:?}",
            a.status,
            a.headers
        );
        let exposed = header(&a, "access-control-expose-headers").to_ascii_lowercase();
        ensure!(
            exposed.contains("retry-after"),
            "{method} {path}: Retry-After is not exposed: {exposed:?}"
        );
        if a.status == 405 {
            ensure!(
                header(&a, "allow").contains("GET"),
                "a 405 names its methods: {:?}",
                a.headers
            );
        }
    }
    Ok(())
}

/// Prometheus's linter, installed from Debian's `prometheus` when missing.
const PROMTOOL: &str = "/usr/bin/promtool";

/// `/metrics` after an HTTP request through a tunnel and an API call.
async fn metrics_after_traffic() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let (_agent, host, public) = start_http_agent(&edge, "tcp", web, "app", &[])?;
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(status == 200, "through the tunnel: {status} {body}");
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let status = admin.get("/api/v1/status").await?;
    ensure!(status.status == 200, "status: {}", status.text);
    // The traffic window is 200 ms: let the tunnel's bytes be reported.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let metrics = admin.get("/metrics").await?;
    ensure!(metrics.status == 200, "/metrics: {}", metrics.text);
    Ok(metrics.text)
}

/// What is missing of `family` in the Prometheus text `text`: its HELP and
/// TYPE lines and a sample of each of its label sets.
fn missing(family: &Family, text: &str) -> Vec<String> {
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let mut missing = Vec::new();
    for line in [
        format!("# HELP {} {}", family.name, family.help),
        format!("# TYPE {} {kind}", family.name),
    ] {
        if !text.lines().any(|l| l == line) {
            missing.push(line);
        }
    }
    let sample = match family.kind {
        Kind::Histogram => format!("{}_count", family.name),
        _ => family.name.to_string(),
    };
    for labels in family.series {
        let pairs: Vec<_> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let found = text.lines().any(|l| {
            l.strip_prefix(&sample)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
                && pairs.iter().all(|p| l.contains(p.as_str()))
        });
        if !found {
            missing.push(format!("{sample}{{{}}}", pairs.join(",")));
        }
    }
    missing
}

/// The value of the unlabelled sample `name` in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on `text`: its findings, if any.
fn promtool_findings(text: String) -> Result<Option<String>> {
    use std::io::Write;
    use std::process::Stdio;
    tools::debian(&[PROMTOOL], &["prometheus"])?;
    let mut lint = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool")?;
    lint.stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let out = lint.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((!out.status.success() || !said.trim().is_empty()).then_some(said))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_wrong_in_metrics() -> Result<()> {
    let text = metrics_after_traffic().await?;
    // Families labelled by what an edge is given at run time (its
    // witnesses) have no series here; the tests of that feature read them.
    let missing: Vec<_> = metric_catalog::ALL
        .iter()
        .filter(|f| !f.series.is_empty())
        .flat_map(|f| missing(f, &text))
        .collect();
    ensure!(
        missing.is_empty(),
        "missing from /metrics: {missing:#?}\n{text}"
    );
    let proxied = sample(&text, metric_catalog::HTTP_REQUESTS.name);
    ensure!(
        proxied >= Some(1.0),
        "the request through the tunnel is counted: {proxied:?}"
    );
    let findings = tokio::task::spawn_blocking(move || promtool_findings(text)).await??;
    ensure!(
        findings.is_none(),
        "promtool check metrics:\n{}",
        findings.unwrap_or_default()
    );
    Ok(())
}
