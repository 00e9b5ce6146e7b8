//! The dashboard in a real browser: headless Chromium (Debian's chromium and
//! chromium-driver, installed with apt-get when missing) driven over
//! WebDriver. It signs in with a token, sees a tunnel come online and a
//! proxied request appear in the inspector without a reload (the live feed),
//! switches the tunnel to full capture, opens a request's headers and JSON
//! body and replays it (the replay appears live, selected),
//! creates and revokes a token, counts the usage chart's bars for 7, 30 and
//! 90 days, and checks a phone-sized window scrolls only vertically. A
//! screenshot of each page is saved under `target/dashboard-screenshots/`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::{api_edge, Api};
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::ADMIN_TOKEN;
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

/// Installs Debian's chromium and chromium-driver unless both are there.
fn ensure_chromium() -> Result<()> {
    common::tools::debian(&[CHROMIUM, CHROMEDRIVER], &["chromium", "chromium-driver"])
}

/// chromedriver on a port of its choosing; returns it and its URL.
fn start_chromedriver() -> Result<(std::process::Child, String)> {
    let mut child = Command::new(CHROMEDRIVER)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("chromedriver")?;
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            let port: u16 = rest.trim_end_matches('.').trim().parse()?;
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, format!("http://127.0.0.1:{port}")));
        }
    }
    bail!("chromedriver did not say which port it listens on")
}

async fn browser(driver: &str, profile: &Path) -> Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Ok(ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver)
        .await?)
}

fn shots() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn shoot(c: &Client, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(shots()?.join(format!("{name}.png")), png)?;
    Ok(())
}

/// Waits for `css` to match, and returns the first match.
async fn find(c: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("{css} did not appear in {WAIT:?}"))
}

/// Whether a command failed because the page re-rendered under it (a live update).
fn stale(e: &fantoccini::error::CmdError) -> bool {
    e.to_string().contains("stale element")
}

/// Clicks `css`, finding it again while live updates re-render it.
async fn click(c: &Client, css: &str) -> Result<()> {
    for _ in 0..50 {
        match find(c, css).await?.click().await {
            Err(e) if stale(&e) => tokio::time::sleep(Duration::from_millis(100)).await,
            done => return Ok(done?),
        }
    }
    bail!("{css} kept going stale")
}

/// The text of `css` once `ok` holds for it (it may be re-rendered meanwhile).
async fn text_when(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
    let mut last = String::new();
    for _ in 0..100 {
        match find(c, css).await?.text().await {
            Ok(t) if ok(&t) => return Ok(t),
            Ok(t) => last = t,
            Err(e) if stale(&e) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{css} never showed what was expected; last: {last:?}")
}

async fn count(c: &Client, css: &str) -> Result<usize> {
    Ok(c.find_all(Locator::Css(css)).await?.len())
}

/// Clicks the nav link to `page` and waits for the page to render.
async fn open(c: &Client, page: &str) -> Result<()> {
    click(c, &format!("#nav a[href='#/{page}']")).await?;
    find(c, &format!("main[data-page='{page}']")).await?;
    Ok(())
}

async fn bars_for(c: &Client, days: usize) -> Result<usize> {
    // The page re-renders when its data arrives: the button may go stale.
    click(c, &format!("button[data-days='{days}']")).await?;
    find(c, &format!("button[data-days='{days}'].active")).await?;
    count(c, "#usage-chart rect.bar").await
}

async fn run(c: &Client, edge: &common::tunnel::Edge) -> Result<()> {
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    c.goto(&format!("http://{}/", edge.api)).await?;
    // A wrong token is refused with the API's message, readable.
    find(c, "#token-input")
        .await?
        .send_keys("tok_nobody.0000")
        .await?;
    find(c, "#sign-in").await?.click().await?;
    let refused = find(c, "#notice:not([hidden])").await?.text().await?;
    ensure!(
        refused.starts_with("Sign-in refused: ") && refused.contains("key"),
        "the refusal says nothing useful: {refused}"
    );
    let input = find(c, "#token-input").await?;
    input.clear().await?;
    input.send_keys(ADMIN_TOKEN).await?;
    find(c, "#sign-in").await?.click().await?;
    find(c, "main[data-page='overview'] #plan-name").await?;
    text_when(c, "#tunnels-online", |t| t == "0")
        .await
        .context("no tunnel is online yet")?;
    shoot(c, "overview-empty").await?;

    // A tunnel comes online while the page is open.
    open(c, "tunnels").await?;
    let web = http_server().await?;
    let (_agent, host, public) = start_http_agent(edge, "tcp", web, "dash", &[])?;
    text_when(c, "tr[data-tunnel-id][data-status='online']", |t| {
        t.contains("dash")
    })
    .await?;
    shoot(c, "tunnels").await?;

    // A request through it appears in the inspector, and opens.
    open(c, "inspector").await?;
    let mut http = client(public).await?;
    let (status, _) = send(&mut http, get(&host, "/hello")?).await?;
    ensure!(status == 200, "the request through the tunnel: {status}");
    click(c, "tr[data-path='/hello']").await?;
    text_when(c, "#request-detail h2", |t| t == "GET /hello").await?;
    shoot(c, "inspector").await?;

    // Full capture switched on from the detail; a JSON POST then shows its
    // headers and pretty-printed body, and its replay appears live, selected.
    click(c, "#capture-full").await?;
    find(c, "#notice.info:not([hidden])").await?;
    let tunnels = admin.get("/api/v1/tunnels").await?;
    ensure!(
        tunnels.body["tunnels"][0]["inspect"] == "full",
        "{}",
        tunnels.text
    );
    let json = r#"{"order":42,"items":["a","b"]}"#;
    let post = hyper::Request::post("/sum")
        .header("host", &host)
        .header("content-type", "application/json")
        .body(common::http::full(json))?;
    ensure!(
        send(&mut http, post).await?.0 == 200,
        "the POST through the tunnel"
    );
    click(c, "tr[data-path='/sum']").await?;
    text_when(c, "#request-body", |t| t.contains("\"order\": 42,\n")).await?;
    text_when(c, "#request-headers", |t| t.contains("application/json")).await?;
    let listed = admin.get("/api/v1/requests").await?;
    let original = listed.body["requests"][0]["id"]
        .as_str()
        .context("id")?
        .to_string();
    shoot(c, "inspector-detail").await?;
    click(c, "#replay-button").await?;
    let said = text_when(c, "#notice.info:not([hidden])", |t| {
        t.starts_with("Replayed")
    })
    .await?;
    ensure!(said.contains("Replayed POST /sum → 200"), "{said}");
    find(c, &format!("tr.selected[data-replay-of='{original}']")).await?;
    let want = format!("A replay of request {original}");
    text_when(c, "#replay-of", |t| t == want).await?;
    shoot(c, "inspector-replayed").await?;

    // A token is created (its secret shown once) and revoked.
    open(c, "tokens").await?;
    find(c, "#token-label")
        .await?
        .send_keys("from-the-browser")
        .await?;
    find(c, "#token-create").await?.click().await?;
    let secret = find(c, "#token-secret").await?.text().await?;
    ensure!(secret.starts_with("tok_"), "{secret}");
    let id = secret.split('.').next().context("id")?.to_string();
    let listed = admin.get("/api/v1/tokens?limit=200").await?;
    ensure!(listed.text.contains(&id), "the new token is not listed");
    // A byte limit is bound to it, and a bad one is refused readably.
    let limit = find(c, &format!("input[data-limit='{id}']")).await?;
    limit.send_keys("lots").await?;
    find(c, &format!("button[data-set-limit='{id}']"))
        .await?
        .click()
        .await?;
    let said = find(c, "#notice:not([hidden])").await?.text().await?;
    ensure!(said.contains("whole number"), "{said}");
    let limit = find(c, &format!("input[data-limit='{id}']")).await?;
    limit.clear().await?;
    limit.send_keys("5000000").await?;
    find(c, &format!("button[data-set-limit='{id}']"))
        .await?
        .click()
        .await?;
    find(c, &format!("input[data-limit='{id}'][value='5000000']")).await?;
    let limited = admin.get("/api/v1/tokens?limit=200").await?;
    let bound = limited.body["tokens"]
        .as_array()
        .context("tokens")?
        .iter()
        .any(|t| t["id"] == id.as_str() && t["limitBytes"] == 5_000_000);
    ensure!(bound, "the API does not show the limit: {}", limited.text);
    shoot(c, "tokens-created").await?;
    let revoke = find(c, &format!("button[data-revoke='{id}']")).await?;
    revoke.click().await?;
    revoke.click().await?;
    find(c, &format!("tr[data-token-id='{id}'][data-revoked='yes']")).await?;
    let gone = admin.get("/api/v1/tokens?limit=200").await?;
    let revoked = gone.body["tokens"]
        .as_array()
        .context("tokens")?
        .iter()
        .any(|t| t["id"] == id.as_str() && !t["revokedAt"].is_null());
    ensure!(revoked, "the API does not show the token revoked");

    // The usage chart has a bar a day.
    open(c, "usage").await?;
    for days in [7, 90, 30] {
        let bars = bars_for(c, days).await?;
        ensure!(bars == days, "{days} days drew {bars} bars");
    }
    shoot(c, "usage").await?;
    open(c, "domains").await?;
    shoot(c, "domains").await?;

    // The overview now shows the tunnel; on a phone-sized screen nothing
    // overflows sideways.
    open(c, "overview").await?;
    text_when(c, "#tunnels-online", |t| t == "1")
        .await
        .context("the overview does not count the tunnel")?;
    shoot(c, "overview").await?;
    c.set_window_size(390, 844).await?;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await?;
    shoot(c, "overview-narrow").await?;
    ensure!(
        fits == serde_json::Value::Bool(true),
        "the page scrolls sideways at 390 px"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() -> Result<()> {
    tokio::task::spawn_blocking(ensure_chromium).await??;
    let (_dir, edge) = api_edge()?;
    let (mut driver, url) = start_chromedriver()?;
    let profile = tempfile::tempdir()?;
    let outcome = async {
        let c = browser(&url, profile.path()).await?;
        let result = run(&c, &edge).await;
        if result.is_err() {
            let _ = shoot(&c, "failure").await;
        }
        let _ = c.close().await;
        result
    }
    .await;
    let _ = driver.kill();
    let _ = driver.wait();
    outcome
}
