//! ACME against Debian's `pebble` (the ACME test server), started here on
//! 127.0.0.1 with a DNS server of the test's own: the first HTTPS request
//! for a new tunnel host gets a certificate issued through TLS-ALPN-01 that
//! curl accepts with pebble's root; a name the edge does not route gets no
//! order; the certificate and the account are kept in the data dir, the
//! owner's alone.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::common::api::metric;
use crate::common::dns::address_server;
use crate::common::http::{http_server, start_http_agent};
use crate::common::tunnel::start_edge;

/// A port free now on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A self-signed certificate for pebble's own HTTPS (127.0.0.1 and
/// localhost), written to `dir` as cert.pem (also ca.pem: the edge trusts
/// it for the directory) and key.pem.
fn pebble_tls(dir: &Path) -> Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
            127, 0, 0, 1,
        ])));
    let cert = params.self_signed(&key)?;
    std::fs::write(dir.join("ca.pem"), cert.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    Ok(())
}

/// pebble on `acme` (directory) and `management`, validating TLS-ALPN-01
/// on `tls_port` and resolving names with the DNS server on `dns`; its
/// certificates last `validity` seconds (none: pebble's default, 5 years).
fn start_pebble(
    dir: &Path,
    acme: u16,
    management: u16,
    tls_port: u16,
    dns: u16,
    validity: Option<u64>,
) -> Result<std::process::Child> {
    // Installed from Debian's packages when missing (CI starts from a clean machine).
    crate::common::tools::debian(&["/usr/bin/pebble"], &["pebble"])?;
    let mut config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": free_port()?,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    if let Some(seconds) = validity {
        config["pebble"]["certificateValidityPeriod"] = seconds.into();
    }
    let path = dir.join("pebble.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    let child = Command::new("pebble")
        .arg("-config")
        .arg(&path)
        .arg("-dnsserver")
        .arg(format!("127.0.0.1:{dns}"))
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pebble.log"))?)
        .spawn()
        .context("pebble")?;
    Ok(child)
}

/// curl's HTTPS GET of `https://HOST:PORT/hello` (resolved to 127.0.0.1),
/// trusting only `ca`: its exit code and output.
fn curl(host: &str, port: u16, ca: &Path) -> Result<(i32, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "40", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/hello"))
        .output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), text))
}

/// An edge whose HTTPS certificates come from a pebble of its own, with an
/// HTTP tunnel `web` behind it.
struct Setup {
    work: tempfile::TempDir,
    data: tempfile::TempDir,
    edge: crate::common::tunnel::Edge,
    https: u16,
    root: std::path::PathBuf,
    _agent: crate::common::tunnel::Proc,
    _pebble: Pebble,
}

/// The pebble process, killed when dropped.
struct Pebble(std::process::Child);

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn setup(validity: Option<u64>) -> Result<Setup> {
    let work = tempfile::tempdir()?;
    pebble_tls(work.path())?;
    let names = Arc::new(Mutex::new(HashMap::from([(
        "web.localhost".to_string(),
        Ipv4Addr::LOCALHOST,
    )])));
    let dns = address_server(names).await?;
    let ca = work.path().join("ca.pem");
    let ca_arg = ca.to_str().context("path")?;
    // pebble's ports are picked free, then bound by pebble: another test may
    // take one in between, and pebble then exits. The edge names pebble's
    // directory, so both start again on new ports.
    let mut attempt = 0;
    let (data, edge, pebble, management) = loop {
        attempt += 1;
        let (acme, management) = (free_port()?, free_port()?);
        let data = tempfile::tempdir()?;
        let directory = format!("https://127.0.0.1:{acme}/dir");
        let edge = start_edge(
            data.path(),
            "tcp",
            "127.0.0.1:0",
            &[
                "--http-listen",
                "127.0.0.1:0",
                "--acme-directory",
                &directory,
                "--acme-email",
                "ops@example.test",
                "--acme-ca",
                ca_arg,
            ],
        )?;
        let https = edge.http.context("https")?.port();
        let mut pebble = Pebble(start_pebble(
            work.path(),
            acme,
            management,
            https,
            dns,
            validity,
        )?);
        // It makes its CA's keys first: slow on a busy machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let up = loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", acme))
                .await
                .is_ok()
            {
                break true;
            }
            if pebble.0.try_wait()?.is_some() || std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if up {
            break (data, edge, pebble, management);
        }
        let log = std::fs::read_to_string(work.path().join("pebble.log")).unwrap_or_default();
        ensure!(attempt < 3, "pebble did not start: {log}");
        eprintln!("pebble did not start (attempt {attempt}), trying new ports: {log}");
    };
    let https = edge.http.context("https")?.port();
    let web = http_server().await?;
    let (agent, url, _) = start_http_agent(&edge, "tcp", web, "web", &[])?;
    ensure!(url.starts_with("web.localhost:"), "{url}");
    // pebble's root, from its management interface (over pebble's own TLS).
    let root = work.path().join("root.pem");
    let got = Command::new("curl")
        .args(["-sS", "--cacert", ca_arg, "-o"])
        .arg(&root)
        .arg(format!("https://127.0.0.1:{management}/roots/0"))
        .status()?;
    ensure!(got.success(), "pebble's root");
    Ok(Setup {
        work,
        data,
        edge,
        https,
        root,
        _agent: agent,
        _pebble: pebble,
    })
}

/// Certificates issued and orders failed, as the edge counts them.
async fn orders(edge: &crate::common::tunnel::Edge) -> Result<(u64, u64)> {
    Ok((
        metric(edge.api, "beamd_acme_orders_total{result=\"issued\"}").await?,
        metric(edge.api, "beamd_acme_orders_total{result=\"failed\"}").await?,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_tunnel_host_gets_a_certificate_from_pebble_and_an_unrouted_name_none() -> Result<()>
{
    let s = setup(None).await?;
    // The first request waits for the order; curl trusts nothing but pebble's root.
    let (code, text) = curl("web.localhost", s.https, &s.root)?;
    let log = std::fs::read_to_string(s.work.path().join("pebble.log")).unwrap_or_default();
    ensure!(
        code == 0 && text.contains("hello"),
        "curl: {code} {text}\npebble:\n{log}"
    );
    ensure!(orders(&s.edge).await? == (1, 0), "one order");
    // Again: the same certificate, no new order.
    let (code, _) = curl("web.localhost", s.https, &s.root)?;
    ensure!(code == 0);
    // A name the edge does not route gets the edge's own certificate (curl
    // refuses it) and causes no order.
    let (code, _) = curl("other.localhost", s.https, &s.root)?;
    ensure!(code != 0, "an unrouted name gets no CA certificate");
    ensure!(orders(&s.edge).await? == (1, 0), "still one order");
    // The operator sees what is held in /status.
    let api = crate::common::api::Api::new(s.edge.api, crate::common::tunnel::ADMIN_TOKEN);
    let status = api.get("/api/v1/status").await?;
    let held = &status.body["acme"]["certificates"];
    ensure!(
        held[0]["host"] == "web.localhost" && held.as_array().map(Vec::len) == Some(1),
        "{}",
        status.body
    );
    // Kept in the data dir, the owner's alone.
    for file in ["acme/web.localhost.pem", "acme/account.json"] {
        let mode = std::fs::metadata(s.data.path().join(file))?
            .permissions()
            .mode();
        ensure!(mode & 0o077 == 0, "{file} is {mode:o}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_with_a_third_of_its_lifetime_left_is_renewed() -> Result<()> {
    // pebble issues for 15 s here: renewal is due 10 s after issuance.
    let s = setup(Some(15)).await?;
    let (code, text) = curl("web.localhost", s.https, &s.root)?;
    ensure!(code == 0 && text.contains("hello"), "curl: {code} {text}");
    let pem = s.data.path().join("acme/web.localhost.pem");
    let first = std::fs::read(&pem)?;
    // Requests go on meanwhile; once due, the next handshake renews in the
    // background while the current certificate is still served.
    crate::common::cluster::eventually_within("a renewal", Duration::from_secs(40), || async {
        let (code, text) = curl("web.localhost", s.https, &s.root)?;
        ensure!(code == 0, "served while renewing: {code} {text}");
        Ok(orders(&s.edge).await?.0 >= 2)
    })
    .await?;
    ensure!(
        std::fs::read(&pem)? != first,
        "the renewed certificate is kept"
    );
    Ok(())
}
