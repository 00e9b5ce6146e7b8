//! First start: a default tenant and an admin token, shown once (or taken
//! from `BEAMD_ADMIN_TOKEN`).

use anyhow::{Context, Result};
use beamd_events::vocabulary::{KeyKind, Plan};

use crate::actors::{Core, CoreError, Secret};
use crate::domain::{CreateTenant, DomainError, Scope, Scopes};
use crate::protocol::Token;

/// What the first start created.
pub struct Bootstrap {
    /// The admin token (`tok_<id>.<secret>`).
    pub token: String,
    /// Whether it came from the environment (and so must not be printed).
    pub from_env: bool,
}

/// Creates the default tenant and admin token when the log has no tenant yet.
pub async fn bootstrap(
    core: &Core,
    env_token: Option<String>,
    tunnel_base: &str,
) -> Result<Option<Bootstrap>> {
    if !core.directory().await?.tenants.is_empty() {
        return Ok(None);
    }
    let tenant = core
        .create_tenant(CreateTenant {
            slug: "default".into(),
            name: "Default".into(),
            plan: Plan {
                name: "unlimited".into(),
                ..Plan::default()
            },
            tunnel_base: tunnel_base.to_string(),
        })
        .await;
    let tenant = match tenant {
        // Another edge on the same shared log bootstrapped it first.
        Err(CoreError::Domain(DomainError::Conflict(_))) => return Ok(None),
        other => other.context("cannot create the default tenant")?,
    };
    let scopes = Scopes::of(&[Scope::Admin]);
    let (key, secret, from_env) = match env_token {
        Some(text) => {
            let token = Token(text);
            let (id, secret) = token
                .parts()
                .context("the admin token (--admin-token or BEAMD_ADMIN_TOKEN) must look like tok_<id>.<secret>")?;
            let secret = Secret::from_text(secret).context("the admin token")?;
            let (key, secret) = core
                .issue_key_as(
                    &tenant.id,
                    id,
                    secret,
                    "admin",
                    KeyKind::Agent,
                    scopes,
                    None,
                    Scope::Admin,
                )
                .await?;
            (key, secret, true)
        }
        None => {
            let (key, secret) = core
                .issue_key(
                    &tenant.id,
                    "admin",
                    KeyKind::Agent,
                    scopes,
                    None,
                    Scope::Admin,
                )
                .await?;
            (key, secret, false)
        }
    };
    Ok(Some(Bootstrap {
        token: format!("{}.{}", key.id, secret.expose()),
        from_env,
    }))
}
