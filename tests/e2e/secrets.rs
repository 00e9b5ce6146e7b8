//! No secret is stored or logged in the clear: after minting tokens, a
//! tenant, a gateway consumer key and an account, and after an agent has
//! authenticated with one of the tokens, every byte of the data dir and of
//! the edge's debug log is scanned for each secret, and none is found.

use crate::common;

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::{new_token, Api};
use common::tunnel::{echo_server, start_edge_env, Proc, ADMIN_TOKEN};

/// Every file under `dir`, read whole.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push((path.display().to_string(), std::fs::read(&path)?));
        }
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secret part of a `tok_<id>.<secret>` token (or the whole string).
fn secret_part(token: &str) -> &str {
    token.split_once('.').map_or(token, |(_, s)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_or_logged_in_the_clear() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge_env(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[],
        &[("BEAMD_LOG", "debug")],
    )?;
    let (agent_addr, api_addr) = (edge.agent_addr.to_string(), edge.api);
    let fingerprint = edge.fingerprint.clone();
    let admin = Api::new(api_addr, ADMIN_TOKEN);

    let mut secrets = vec![ADMIN_TOKEN.to_string()];
    for label in ["ci", "laptop", "deploy"] {
        let made = new_token(&admin, label).await?;
        let token = made.body["token"].as_str().context("token")?.to_string();
        // 256 random bits: 64 hex digits after the id.
        ensure!(secret_part(&token).len() >= 64, "a short secret: {token}");
        secrets.push(token);
    }
    let tenant = admin
        .send("POST", "/api/v1/tenants", Some(r#"{"slug":"other"}"#))
        .await?;
    ensure!(tenant.status == 201, "{}", tenant.text);
    secrets.push(
        tenant.body["token"]
            .as_str()
            .context("tenant token")?
            .into(),
    );
    let consumer = admin
        .send(
            "POST",
            "/api/v1/consumers",
            Some(r#"{"name":"shop","rateLimitTier":"standard"}"#),
        )
        .await?;
    ensure!(consumer.status == 201, "{}", consumer.text);
    secrets.push(consumer.body["apiKey"].as_str().context("apiKey")?.into());
    let anon = Api {
        addr: api_addr,
        token: None,
    };
    let password = "correct horse battery staple";
    let account = anon
        .send(
            "POST",
            "/api/v1/auth/register",
            Some(&format!(
                r#"{{"name":"Ann","email":"ann@example.org","password":"{password}"}}"#
            )),
        )
        .await?;
    ensure!(account.status == 201, "{}", account.text);
    secrets.push(password.into());
    if let Some(key) = account.body["gatewayApiKey"].as_str() {
        secrets.push(key.into());
    }
    let signed_in = anon
        .send(
            "POST",
            "/api/v1/auth/login",
            Some(&format!(
                r#"{{"email":"ann@example.org","password":"{password}"}}"#
            )),
        )
        .await?;
    ensure!(signed_in.status == 200, "{}", signed_in.text);

    // An agent authenticates with a minted token and carries a connection.
    let local = echo_server().await?.to_string();
    let agent = Proc::spawn(
        &[
            "tcp",
            &local,
            "--edge",
            &agent_addr,
            "--transport",
            "tcp",
            "--fingerprint",
            &fingerprint,
        ],
        &[("BEAMD_TOKEN", secrets[1].as_str()), ("BEAMD_LOG", "debug")],
    )?;
    let line = agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    let public = common::tunnel::parse_public(&line)?;
    common::tunnel::round_trip(public, common::tunnel::pattern(1, 4096)).await?;

    drop(agent);
    edge.proc.signal(rustix::process::Signal::TERM)?;
    let mut edge = edge;
    edge.proc.child.wait()?;

    let mut stored = Vec::new();
    files(dir.path(), &mut stored)?;
    ensure!(
        stored.len() > 3,
        "the data dir holds {} files",
        stored.len()
    );
    let log = edge
        .proc
        .stderr
        .lock()
        .map(|l| l.join("\n"))
        .unwrap_or_default();
    ensure!(
        log.lines().count() > 5,
        "the debug log is nearly empty: {log}"
    );
    // The scan does see what is stored: the labels next to the hashes.
    ensure!(
        stored.iter().any(|(_, b)| contains(b, b"laptop")),
        "a token's label is not in the data dir: the scan reads nothing"
    );
    for secret in &secrets {
        let needle = secret_part(secret);
        for (path, bytes) in &stored {
            ensure!(
                !contains(bytes, needle.as_bytes()),
                "{needle:?} is stored in {path}"
            );
        }
        ensure!(!log.contains(needle), "{needle:?} is in the edge's log");
    }
    Ok(())
}

/// Every path under `dir` whose mode gives its group or others any access.
fn shared_paths(dir: &Path, out: &mut Vec<String>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            shared_paths(&path, out)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_everything_in_it_are_the_owners_alone() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir()?;
    // As a fresh machine would have it: the edge makes the data dir itself.
    let dir = parent.path().join("data");
    let d = dir.to_str().context("dir")?;
    let mut edge = common::tunnel::start_edge(
        &dir,
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    new_token(&admin, "ci").await?;
    common::tlog::checkpoint_of(&admin, 1, Duration::from_secs(30)).await?;
    common::tlog::stop(&mut edge).await?;
    let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
    ensure!(mode == 0o700, "the data dir {d} is {mode:o}");
    let mut shared = Vec::new();
    shared_paths(&dir, &mut shared)?;
    ensure!(shared.is_empty(), "readable by others: {shared:?}");

    // A data dir an older edge left readable is made private on the next start.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(dir.join("node_id"), std::fs::Permissions::from_mode(0o644))?;
    let mut edge = common::tunnel::start_edge(&dir, "tcp", "127.0.0.1:0", &[])?;
    let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
    ensure!(mode == 0o700, "the data dir {d} stayed {mode:o}");
    let mut shared = Vec::new();
    shared_paths(&dir, &mut shared)?;
    ensure!(
        shared.is_empty(),
        "readable by others after a restart: {shared:?}"
    );
    common::tlog::stop(&mut edge).await?;
    Ok(())
}
