//! The CLI over the API (`beamd tokens|tunnels|usage|requests|domains`)
//! against a live edge: tables by default, the API's JSON with `--json`,
//! one clear line on stderr and exit 1 on errors.

use crate::common;

use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use common::dns::dns_server;
use common::tunnel::{start_edge, ADMIN_TOKEN};
use common::{beamd, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_commands_print_tables_and_json() -> Result<()> {
    let txt = Arc::new(Mutex::new(String::new()));
    let dns = dns_server("app.example.test", txt.clone()).await?;
    let resolver = format!("127.0.0.1:{dns}");
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--dns-resolver", &resolver],
    )?;
    let api = format!("http://{}", edge.api);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--api", api.as_str(), "--key", ADMIN_TOKEN]);
        beamd(&all)
    };
    let made = run(&["tokens", "create", "--label", "ci", "--limit-bytes", "2048"]);
    ensure!(made.status.success(), "{}", text(&made.stderr));
    let out = text(&made.stdout);
    let id = out.split_whitespace().next().context("id")?.to_string();
    ensure!(
        id.starts_with("tok_") && out.contains(&format!("{id}.")),
        "{out}"
    );
    let list = run(&["tokens", "list"]);
    let table = text(&list.stdout);
    ensure!(
        table.starts_with("ID") && table.contains("ci") && table.contains("2.0 KiB"),
        "{table}"
    );
    let json = run(&["tokens", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    ensure!(v["tokens"].as_array().map(Vec::len) == Some(2), "{v}");
    ensure!(run(&["tokens", "revoke", &id]).status.success());
    let again = run(&["tokens", "revoke", &id]);
    ensure!(!again.status.success(), "revoking twice fails");
    let err = text(&again.stderr);
    ensure!(
        err.lines().count() == 1 && err.contains("404 not_found"),
        "{err}"
    );

    let usage = run(&["usage", "--days", "7"]);
    let out = text(&usage.stdout);
    ensure!(
        usage.status.success() && out.contains("plan") && out.contains("DAY"),
        "{out}"
    );
    ensure!(
        out.lines().filter(|l| l.starts_with("20")).count() == 7,
        "7 days: {out}"
    );
    let bad = run(&["usage", "--days", "0"]);
    ensure!(!bad.status.success() && text(&bad.stderr).contains("invalid_request"));

    let added = run(&["domains", "add", "app.example.test"]);
    let out = text(&added.stdout);
    ensure!(
        added.status.success() && out.contains("_beamd-challenge.app.example.test"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&["domains", "list", "--json"]).stdout)?;
    let dom = v["domains"][0]["id"]
        .as_str()
        .context("domain id")?
        .to_string();
    let value = v["domains"][0]["txt"]["value"]
        .as_str()
        .context("txt")?
        .to_string();
    let pending = run(&["domains", "verify", &dom]);
    ensure!(
        !pending.status.success() && text(&pending.stdout).contains("last check: expected"),
        "{}",
        text(&pending.stdout)
    );
    *txt.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = value;
    let verified = run(&["domains", "verify", &dom]);
    ensure!(
        verified.status.success() && text(&verified.stdout).contains("verified"),
        "{}",
        text(&verified.stdout)
    );
    ensure!(run(&["domains", "remove", &dom]).status.success());

    let tunnels = run(&["tunnels", "list"]);
    ensure!(tunnels.status.success() && text(&tunnels.stdout).starts_with("ID"));
    let requests = run(&["requests"]);
    ensure!(requests.status.success() && text(&requests.stdout).starts_with("AT"));

    let nokey = beamd(&["tokens", "list", "--api", &api]);
    ensure!(
        !nokey.status.success() && text(&nokey.stderr).contains("no API key"),
        "{}",
        text(&nokey.stderr)
    );
    let wrong = beamd(&[
        "tokens",
        "list",
        "--api",
        &api,
        "--key",
        "tok_x.nopenopenopenope",
    ]);
    ensure!(
        text(&wrong.stderr).contains("401 unauthorized"),
        "{}",
        text(&wrong.stderr)
    );
    Ok(())
}
