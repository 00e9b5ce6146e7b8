//! The API commands: each sends its requests and prints a table (or the
//! JSON with `--json`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::api::ApiSettings;
use super::table::{bytes, cell, render};

/// `beamd tokens …`.
#[derive(Debug, Clone)]
pub enum TokensCmd {
    /// List the tenant's keys (never their secrets).
    List,
    /// Mint a key; its secret is printed once.
    Create {
        /// Label (≤ 80 characters).
        label: Option<String>,
        /// agent (opens tunnels, reads the API) or api.
        kind: String,
        /// A scope: read, manage or admin (repeat for several; default read).
        scopes: Vec<String>,
        /// Byte limit (up + down).
        limit_bytes: Option<u64>,
    },
    /// Revoke a key.
    Revoke {
        /// The key id, tok_….
        id: String,
    },
}

/// `beamd tunnels …`.
#[derive(Debug, Clone)]
pub enum TunnelsCmd {
    /// List the tenant's tunnels.
    List,
    /// Release a tunnel: its name or port is free again.
    Release {
        /// The tunnel id, tun_….
        id: String,
    },
}

/// `beamd domains …`.
#[derive(Debug, Clone)]
pub enum DomainsCmd {
    /// List custom domains and their state.
    List,
    /// Add a domain; prints the TXT record to publish.
    Add {
        /// The host name.
        host: String,
    },
    /// Look up the domain's TXT record now.
    Verify {
        /// The domain id, dom_….
        id: String,
    },
    /// Remove a domain (it stops routing at once).
    Remove {
        /// The domain id, dom_….
        id: String,
    },
}

/// The API commands.
#[derive(Debug)]
pub enum ClientCommand {
    /// Keys.
    Tokens(TokensCmd),
    /// Tunnels.
    Tunnels(TunnelsCmd),
    /// Usage over `days`.
    Usage {
        /// Days, 1–365.
        days: u64,
    },
    /// Recent requests; `follow` keeps printing new ones.
    Requests {
        /// One request in detail, or its replay, instead of the list.
        cmd: Option<super::requests::RequestsCmd>,
        /// How many to show first.
        limit: usize,
        /// Keep printing new requests until interrupted.
        follow: bool,
    },
    /// Custom domains.
    Domains(DomainsCmd),
}

/// Every page of a list.
async fn all(api: &ApiSettings, path: &str, field: &str) -> Result<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = match &cursor {
            Some(c) => {
                api.call("GET", &format!("{path}{sep}limit=200&cursor={c}"), None)
                    .await?
            }
            None => {
                api.call("GET", &format!("{path}{sep}limit=200"), None)
                    .await?
            }
        };
        items.extend(page[field].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(json!({ field: items })),
        }
    }
}

fn rows(v: &Value, field: &str, f: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v[field]
        .as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

fn print(api: &ApiSettings, value: &Value, table: impl FnOnce(&Value) -> String) -> Result<()> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", table(value));
    }
    Ok(())
}

fn domain_table(d: &Value) -> String {
    let mut out = render(
        &["ID", "HOST", "STATUS", "TXT NAME", "TXT VALUE"],
        &[vec![
            cell(&d["id"]),
            cell(&d["host"]),
            cell(&d["status"]),
            cell(&d["txt"]["name"]),
            cell(&d["txt"]["value"]),
        ]],
    );
    if let Some(f) = d["failure"].as_str() {
        out.push_str(&format!("\nlast check: {f}"));
    }
    out
}

fn request_row(r: &Value) -> Vec<String> {
    // Requests captured before every one had an id are named by their seq.
    let name = match r["id"].is_string() {
        true => cell(&r["id"]),
        false => cell(&r["seq"]),
    };
    let status = match r["refused"].as_str() {
        Some(why) => format!("{} refused: {why}", cell(&r["status"])),
        None => cell(&r["status"]),
    };
    vec![
        cell(&r["at"]),
        name,
        cell(&r["method"]),
        status,
        format!("{} ms", cell(&r["durationMs"])),
        bytes(&r["bytes"]),
        cell(&r["host"]),
        cell(&r["path"]),
    ]
}

const REQUEST_HEADER: [&str; 8] = [
    "AT", "ID", "METHOD", "STATUS", "TIME", "BYTES", "HOST", "PATH",
];

/// Prints requests newer than seq `after` as they come, until interrupted.
async fn follow_requests(api: &ApiSettings, mut after: u64) -> Result<()> {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let v = api.call("GET", "/requests?limit=1000", None).await?;
        let mut fresh: Vec<Value> = v["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["seq"].as_u64().is_some_and(|s| s > after))
            .collect();
        fresh.reverse();
        for r in &fresh {
            if api.json {
                println!("{r}");
            } else {
                println!("{}", request_row(r).join("  "));
            }
            after = after.max(r["seq"].as_u64().unwrap_or(0));
        }
    }
}

/// Runs an API command.
pub async fn run(cmd: ClientCommand, api: ApiSettings) -> Result<ExitCode> {
    match cmd {
        ClientCommand::Tokens(TokensCmd::List) => {
            let v = all(&api, "/tokens", "tokens").await?;
            print(&api, &v, |v| {
                render(
                    &[
                        "ID", "LABEL", "KIND", "SCOPES", "LIMIT", "UP", "DOWN", "CREATED",
                        "REVOKED",
                    ],
                    &rows(v, "tokens", |t| {
                        vec![
                            cell(&t["id"]),
                            cell(&t["label"]),
                            cell(&t["kind"]),
                            cell(&t["scopes"]),
                            bytes(&t["limitBytes"]),
                            bytes(&t["bytesUp"]),
                            bytes(&t["bytesDown"]),
                            cell(&t["createdAt"]),
                            cell(&t["revokedAt"]),
                        ]
                    }),
                )
            })?;
        }
        ClientCommand::Tokens(TokensCmd::Create {
            label,
            kind,
            scopes,
            limit_bytes,
        }) => {
            let mut body = json!({ "kind": kind });
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(n) = limit_bytes {
                body["limitBytes"] = json!(n);
            }
            let v = api.call("POST", "/tokens", Some(body)).await?;
            print(&api, &v, |v| {
                format!(
                    "{} created; its secret is shown once:\n{}",
                    cell(&v["id"]),
                    cell(&v["token"])
                )
            })?;
        }
        ClientCommand::Tokens(TokensCmd::Revoke { id }) => {
            let v = api.call("DELETE", &format!("/tokens/{id}"), None).await?;
            print(&api, &v, |v| format!("{} revoked", cell(&v["id"])))?;
        }
        ClientCommand::Tunnels(TunnelsCmd::List) => {
            let v = all(&api, "/tunnels", "tunnels").await?;
            print(&api, &v, |v| {
                render(
                    &[
                        "ID",
                        "STATUS",
                        "PUBLIC",
                        "TRANSPORT",
                        "LOCAL",
                        "IN",
                        "OUT",
                        "REQUESTS",
                    ],
                    &rows(v, "tunnels", |t| {
                        vec![
                            cell(&t["id"]),
                            cell(&t["status"]),
                            cell(&t["publicUrl"]),
                            cell(&t["transport"]),
                            cell(&t["localAddr"]),
                            bytes(&t["bytesIn"]),
                            bytes(&t["bytesOut"]),
                            cell(&t["requests"]),
                        ]
                    }),
                )
            })?;
        }
        ClientCommand::Tunnels(TunnelsCmd::Release { id }) => {
            let v = api.call("DELETE", &format!("/tunnels/{id}"), None).await?;
            print(&api, &v, |v| format!("{} released", cell(&v["id"])))?;
        }
        ClientCommand::Usage { days } => {
            let v = api
                .call("GET", &format!("/usage?days={days}"), None)
                .await?;
            print(&api, &v, |v| {
                let head = format!(
                    "plan {}: {} in {days} days, peak {} tunnels, {} events, last seen {}\nthis month {} of {}; tunnels {} of {}; domains {} of {}",
                    cell(&v["plan"]), bytes(&v["totalBytes"]), cell(&v["peakTunnels"]), cell(&v["eventCount"]), cell(&v["lastSeen"]),
                    bytes(&v["used"]["bandwidthBytes"]), bytes(&v["limits"]["bandwidthBytes"]),
                    cell(&v["used"]["tunnels"]), cell(&v["limits"]["tunnels"]),
                    cell(&v["used"]["domains"]), cell(&v["limits"]["domains"]),
                );
                let table = render(
                    &["DAY", "BYTES", "PEAK TUNNELS"],
                    &rows(v, "series", |d| {
                        vec![
                            cell(&d["day"]).chars().take(10).collect(),
                            bytes(&d["bytes"]),
                            cell(&d["peakTunnels"]),
                        ]
                    }),
                );
                format!("{head}\n\n{table}")
            })?;
        }
        ClientCommand::Requests { cmd: Some(cmd), .. } => {
            return super::requests::run(cmd, api).await;
        }
        ClientCommand::Requests {
            limit,
            follow,
            cmd: None,
        } => {
            let v = api
                .call("GET", &format!("/requests?limit={limit}"), None)
                .await?;
            let mut seen: BTreeSet<u64> = BTreeSet::new();
            let mut list: Vec<Value> = v["requests"].as_array().cloned().unwrap_or_default();
            list.reverse();
            if api.json {
                for r in &list {
                    println!("{r}");
                }
            } else {
                println!(
                    "{}",
                    render(
                        &REQUEST_HEADER,
                        &list.iter().map(request_row).collect::<Vec<_>>()
                    )
                );
            }
            seen.extend(list.iter().filter_map(|r| r["seq"].as_u64()));
            if follow {
                follow_requests(&api, seen.last().copied().unwrap_or(0)).await?;
            }
        }
        ClientCommand::Domains(DomainsCmd::List) => {
            let v = all(&api, "/domains", "domains").await?;
            print(&api, &v, |v| {
                render(
                    &["ID", "HOST", "STATUS", "TXT NAME", "TXT VALUE"],
                    &rows(v, "domains", |d| {
                        vec![
                            cell(&d["id"]),
                            cell(&d["host"]),
                            cell(&d["status"]),
                            cell(&d["txt"]["name"]),
                            cell(&d["txt"]["value"]),
                        ]
                    }),
                )
            })?;
        }
        ClientCommand::Domains(DomainsCmd::Add { host }) => {
            let v = api
                .call("POST", "/domains", Some(json!({ "host": host })))
                .await?;
            print(&api, &v, |v| {
                format!(
                    "{}\npublish the TXT record, then run: beamd domains verify {}",
                    domain_table(v),
                    cell(&v["id"])
                )
            })?;
        }
        ClientCommand::Domains(DomainsCmd::Verify { id }) => {
            let v = api
                .call("POST", &format!("/domains/{id}/verify"), None)
                .await?;
            print(&api, &v, domain_table)?;
            if v["status"] != "verified" {
                return Ok(ExitCode::FAILURE);
            }
        }
        ClientCommand::Domains(DomainsCmd::Remove { id }) => {
            let v = api.call("DELETE", &format!("/domains/{id}"), None).await?;
            print(&api, &v, |v| format!("{} removed", cell(&v["id"])))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
