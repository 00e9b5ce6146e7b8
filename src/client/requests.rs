//! `beamd requests show ID` and `beamd requests replay ID`: one captured
//! request in detail (headers, bodies, JSON pretty-printed), and sending it
//! again through its tunnel, as captured or edited.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use super::api::ApiSettings;
use super::table::cell;

/// `beamd requests show|replay`.
#[derive(Debug, Clone)]
pub enum RequestsCmd {
    /// One request in detail: metadata, headers and bodies (with full capture).
    Show {
        /// Its req_… id (as `beamd requests` lists it) or its seq.
        id: String,
    },
    /// Send a request captured in full again through its tunnel, as
    /// captured or edited, and print the service's answer. Masked
    /// credentials are not resent: give them with --header.
    Replay {
        /// Its req_… id or its seq.
        id: String,
        /// Another method.
        method: Option<String>,
        /// Another path and query.
        path: Option<String>,
        /// Set a header, "Name: value" (repeatable); "Name:" with no value removes it.
        headers: Vec<String>,
        /// Send this file's bytes as the body.
        body_file: Option<PathBuf>,
    },
}

/// Runs `beamd requests show|replay`.
pub async fn run(cmd: RequestsCmd, api: ApiSettings) -> Result<ExitCode> {
    match cmd {
        RequestsCmd::Show { id } => {
            let v = api.call("GET", &format!("/requests/{id}"), None).await?;
            print(&api, &v, show)?;
        }
        RequestsCmd::Replay {
            id,
            method,
            path,
            headers,
            body_file,
        } => {
            let mut edit = json!({});
            if let Some(m) = method {
                edit["method"] = json!(m.to_ascii_uppercase());
            }
            if let Some(p) = path {
                edit["path"] = json!(p);
            }
            if !headers.is_empty() {
                edit["headers"] = json!(parse_headers(&headers)?);
            }
            if let Some(file) = body_file {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                match String::from_utf8(bytes) {
                    Ok(text) => edit["body"] = json!(text),
                    Err(e) => edit["bodyBase64"] = json!(B64.encode(e.into_bytes())),
                }
            }
            let v = api
                .call("POST", &format!("/requests/{id}/replay"), Some(edit))
                .await?;
            print(&api, &v, replayed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `Name: value` pairs; `Name:` alone removes the header.
fn parse_headers(raw: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for h in raw {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header {h:?} must be \"Name: value\"");
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            bail!("--header {h:?} has no name");
        }
        out.insert(
            name.to_string(),
            (!value.is_empty()).then(|| value.to_string()),
        );
    }
    Ok(out)
}

fn print(api: &ApiSettings, v: &Value, human: impl FnOnce(&Value) -> String) -> Result<()> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{}", human(v));
    }
    Ok(())
}

fn headers(out: &mut String, list: &Value) {
    for pair in list.as_array().into_iter().flatten() {
        out.push_str(&format!("  {}: {}\n", cell(&pair[0]), cell(&pair[1])));
    }
}

/// A body for people: JSON pretty-printed, text as is, binary as base64.
fn body(out: &mut String, b: &Value) {
    let data = b["data"].as_str().unwrap_or("");
    let text = match serde_json::from_str::<Value>(data) {
        Ok(v) if b["encoding"] == "utf8" && (v.is_object() || v.is_array()) => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| data.to_string())
        }
        _ => data.to_string(),
    };
    let note = match (b["truncated"].as_bool(), &b["encoding"]) {
        (Some(true), _) => format!(" (first bytes of {})", cell(&b["len"])),
        (_, e) if e == "base64" => " (base64)".to_string(),
        _ => String::new(),
    };
    out.push_str(&format!("  body{note}:\n"));
    for line in text.lines() {
        out.push_str(&format!("    {line}\n"));
    }
}

fn show(v: &Value) -> String {
    let r = &v["request"];
    let mut out = format!(
        "{} {} {} → {} ({} ms) seq {}",
        cell(&r["at"]),
        cell(&r["method"]),
        cell(&r["path"]),
        cell(&r["status"]),
        cell(&r["durationMs"]),
        cell(&r["seq"])
    );
    if let Some(id) = r["id"].as_str() {
        out.push_str(&format!(", {id}"));
    }
    if let Some(why) = r["refused"].as_str() {
        out.push_str(&format!(", refused by the edge: {why}"));
    }
    if !r["replayOf"].is_null() {
        out.push_str(&format!(", a replay of {}", cell(&r["replayOf"])));
    }
    out.push('\n');
    match v["detail"].as_str() {
        Some("stored") => {
            out.push_str("request headers:\n");
            headers(&mut out, &v["requestHeaders"]);
            if v["requestBody"].is_object() {
                body(&mut out, &v["requestBody"]);
            }
            out.push_str("response headers:\n");
            headers(&mut out, &v["responseHeaders"]);
            if v["responseBody"].is_object() {
                body(&mut out, &v["responseBody"]);
            }
        }
        Some("pruned") => out.push_str("headers and bodies: pruned from the body store\n"),
        _ => out.push_str(
            "headers and bodies: not captured (the tunnel's inspect mode was not full)\n",
        ),
    }
    out.trim_end().to_string()
}

fn replayed(v: &Value) -> String {
    let mut out = format!(
        "{} (replay of {})\n",
        cell(&v["status"]),
        cell(&v["replayOf"])
    );
    headers(&mut out, &v["headers"]);
    body(&mut out, &v["body"]);
    if let Some(id) = v["request"]["id"].as_str() {
        out.push_str(&format!("captured as request {id}\n"));
    }
    out.trim_end().to_string()
}
