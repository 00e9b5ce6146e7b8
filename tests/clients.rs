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

mod common;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use std::sync::{Arc, Mutex};

use common::dns::dns_server;
use common::tunnel::{start_edge, ADMIN_TOKEN};

const VERSION: &str = "4.32.5";

/// The schemathesis executable, installed if it is not there yet.
fn schemathesis() -> Result<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv");
    let exe = venv.join("bin/schemathesis");
    let wanted = format!("schemathesis, version {VERSION}");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&wanted))
        .unwrap_or(false);
    if !installed {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("python3 is needed to install schemathesis")?;
        ensure!(made.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", &format!("schemathesis=={VERSION}")])
            .status()
            .context("pip")?;
        ensure!(pip.success(), "pip install schemathesis=={VERSION} failed");
    }
    Ok(exe)
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
    let tail: String = text
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
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
