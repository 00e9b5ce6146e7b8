//! `--tokens FILE`: agent tokens for a self-hosted edge, imported into the
//! default tenant at start. Tokens already in the log are left as they are.
//!
//! ```json
//! { "tokens": [ { "token": "tok_ci.<secret of 16+ chars>", "label": "ci", "limitBytes": null } ] }
//! ```

use std::path::Path;

use anyhow::{bail, Context, Result};
use beamd_events::vocabulary::KeyKind;
use serde::Deserialize;

use crate::actors::{Core, Secret};
use crate::domain::{Scope, Scopes};
use crate::protocol::Token;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenEntry {
    token: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    limit_bytes: Option<u64>,
}

/// Imports the file's tokens; returns how many were new.
pub async fn import(core: &Core, path: &Path) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: TokensFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a tokens file", path.display()))?;
    let directory = core.directory().await?;
    let tenant = directory
        .slugs
        .get("default")
        .context("there is no default tenant to import tokens into")?;
    let mut imported = 0;
    for (i, entry) in file.tokens.iter().enumerate() {
        let token = Token(entry.token.clone());
        let Some((id, secret)) = token.parts() else {
            bail!(
                "{}: token {} is not of the form tok_<id>.<secret>",
                path.display(),
                i + 1
            );
        };
        if core.known_key(id).await?.is_some() {
            continue;
        }
        let secret = Secret::from_text(secret)
            .with_context(|| format!("{}: token {}", path.display(), i + 1))?;
        let label = entry.label.clone().unwrap_or_else(|| "imported".into());
        core.issue_key_as(
            tenant,
            id,
            secret,
            &label,
            KeyKind::Agent,
            Scopes::default(),
            entry.limit_bytes,
            // The operator's file: the operator's authority.
            Scope::Admin,
        )
        .await
        .with_context(|| format!("{}: token {}", path.display(), i + 1))?;
        imported += 1;
    }
    Ok(imported)
}
