//! A real OpenID provider for the tests: the `oidc-provider` npm package
//! under node (both installed when missing: node from Debian, the package
//! into `target/test-tools/oidc`), started on 127.0.0.1; and a scripted
//! browser that signs in through its login and consent pages with curl and
//! a cookie jar.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

/// The package version the tests run.
const VERSION: &str = "9.13.3";

/// Where the package is installed, once per checkout.
fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/oidc")
}

/// Installs node (Debian) and oidc-provider (npm, in `tools()`) when
/// missing, once for every test of this process: tests starting providers
/// at once must not run npm into one folder together, nor copy the script
/// over one that another test's node is reading.
fn install() -> Result<PathBuf> {
    super::tools::debian(&["/usr/bin/node", "/usr/bin/npm"], &["nodejs", "npm"])?;
    let dir = tools();
    let script = dir.join("provider.mjs");
    super::tools::once("oidc-provider", || install_into(&dir, &script))?;
    Ok(script)
}

fn install_into(dir: &Path, script: &Path) -> Result<()> {
    let marker = dir.join("node_modules/oidc-provider/package.json");
    let have = std::fs::read_to_string(&marker)
        .map(|p| p.contains(&format!("\"version\": \"{VERSION}\"")))
        .unwrap_or(false);
    if !have {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("package.json"), "{\"private\": true}\n")?;
        eprintln!(
            "installing oidc-provider {VERSION} (npm, in {})",
            dir.display()
        );
        let ok = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund"])
            .arg(format!("oidc-provider@{VERSION}"))
            .current_dir(dir)
            .status()
            .context("npm")?
            .success();
        ensure!(ok, "npm install oidc-provider@{VERSION} failed");
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oidc/provider.mjs");
    std::fs::copy(source, script)?;
    Ok(())
}

/// A running provider, stopped when dropped.
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts a provider with one client (`client_id`, `secret`) whose
    /// redirect URI is `redirect`.
    pub fn start(client_id: &str, secret: &str, redirect: &str) -> Result<Self> {
        let script = install()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("node")
            .arg(&script)
            .args([&port.to_string(), client_id, secret, redirect])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("node")?;
        let out = child.stdout.take().context("stdout")?;
        // What it says on stderr, read all along (a full pipe would stop it).
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let said = said.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                if let Ok(mut all) = said.lock() {
                    all.push_str(&text);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut provider = Self {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        };
        // Node's first start on a busy machine is slow (it compiles the
        // package): up to a minute.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "listening" => return Ok(provider),
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    bail!("the OpenID provider did not start within 60 s")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    // It exited: say how, with what it said.
                    let status = provider.child.wait()?;
                    std::thread::sleep(Duration::from_millis(200));
                    let said = said.lock().map(|s| s.clone()).unwrap_or_default();
                    bail!("the OpenID provider exited ({status}) before it listened: {said}")
                }
            }
        }
    }
}

/// A scripted browser: curl with a cookie jar of its own, resolving
/// `host:port` names to 127.0.0.1.
pub struct Browser {
    jar: tempfile::NamedTempFile,
    resolve: Vec<String>,
    ca: Option<PathBuf>,
}

/// One answer: status, `Location`, body.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Browser {
    /// A browser with no cookies, resolving each `host:port` of `names` to 127.0.0.1.
    pub fn new(names: &[&str]) -> Result<Self> {
        Ok(Self {
            jar: tempfile::NamedTempFile::new()?,
            resolve: names.iter().map(|n| format!("{n}:127.0.0.1")).collect(),
            ca: None,
        })
    }

    /// The same, trusting the certificate (PEM) `ca` for HTTPS.
    pub fn trusting(mut self, ca: &Path) -> Self {
        self.ca = Some(ca.to_path_buf());
        self
    }

    /// GETs `url` (or POSTs `form`), following no redirect.
    pub fn fetch(&self, url: &str, form: Option<&str>) -> Result<Page> {
        self.fetch_with(url, form, &[])
    }

    /// `fetch` with more of curl's arguments (headers, `--http2`, …).
    pub fn fetch_with(&self, url: &str, form: Option<&str>, extra: &[&str]) -> Result<Page> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-D", "-", "-c"])
            .arg(self.jar.path())
            .arg("-b")
            .arg(self.jar.path());
        for r in &self.resolve {
            cmd.args(["--resolve", r]);
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(form) = form {
            cmd.args(["--data", form]);
        }
        cmd.args(extra);
        let out = cmd.arg(url).output()?;
        ensure!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Past interim answers (`100 Continue`) to the final one.
        let mut rest = text.as_str();
        let (mut head, mut body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        while head.split_whitespace().nth(1) == Some("100") {
            rest = body;
            (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status")?;
        let location = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        });
        let set_cookies = head
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("set-cookie")
                    .then(|| v.trim().to_string())
            })
            .collect();
        Ok(Page {
            status,
            location,
            set_cookies,
            body: body.to_string(),
        })
    }

    /// The value of cookie `name` in the jar, for any host.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = std::fs::read_to_string(self.jar.path()).ok()?;
        jar.lines()
            .map(|l| l.strip_prefix("#HttpOnly_").unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f.len() == 7 && f[5] == name)
            .map(|f| f[6].to_string())
    }

    /// Follows redirects from `url` through the provider's login (as
    /// `login`) and consent pages, until a redirect leaves the provider
    /// (`issuer`); returns where it goes (the client's callback).
    pub fn sign_in(&self, url: &str, issuer: &str, login: &str) -> Result<String> {
        let mut next = url.to_string();
        let mut form: Option<String> = None;
        for _ in 0..12 {
            let page = self.fetch(&next, form.as_deref())?;
            form = None;
            if let Some(to) = page.location {
                let to = if to.starts_with('/') {
                    format!("{issuer}{to}")
                } else {
                    to
                };
                if !to.starts_with(issuer) {
                    return Ok(to);
                }
                next = to;
                continue;
            }
            // A page of the provider's: the login form, or the consent form.
            let action = page
                .body
                .split("action=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .with_context(|| format!("no form on {next}: {}", page.body))?;
            form = Some(if page.body.contains("value=\"login\"") {
                format!("prompt=login&login={login}&password=any")
            } else {
                "prompt=consent".to_string()
            });
            next = action.to_string();
        }
        bail!("no way out of the provider from {url}")
    }
}
