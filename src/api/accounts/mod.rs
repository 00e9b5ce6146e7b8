//! `/auth`: sign-up (a new tenant on the operator's sign-up plan, its
//! account and an agent key), sign-in (a JWT, accepted wherever keys are,
//! until signed out or the password changes), sign-out, and password resets
//! by mail. Every attempt is charged to its buckets before a password is
//! hashed (sign-in per email and address, per address, and per email for
//! addresses that never signed in to it; sign-up and reset requests per
//! address and per email); an unknown email costs a hash as a known one
//! does; a reset request always answers 200, whether the address has an
//! account or not.

pub mod mail;
pub mod secrets;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use beamd_events::vocabulary::{KeyKind, Plan};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::http::{ok, parse};
use super::ApiState;
use crate::domain::account::{reset_charges, sign_in_charges, sign_up_charges};
use crate::domain::{AccountCommand, CreateTenant, Scope};
use mail::Mailer;
use secrets::{Hashing, JwtKey};
use throttle::Throttle;

/// How long a reset link works, in ms.
const RESET_LIFETIME_MS: u64 = 3_600_000;

/// How accounts work on this edge.
pub struct AccountSettings {
    /// Whether anyone may sign up.
    pub signup: bool,
    /// New tenants' tunnels live under SLUG.<this>.
    pub tunnel_base: String,
    /// Signs sign-in tokens.
    pub jwt: JwtKey,
    /// Sends reset mail (none: mail is off).
    pub mail: Option<Mailer>,
    /// Where reset links point: `<this>/reset-password?token=…`.
    pub public_url: String,
    /// The plan a sign-up's tenant gets.
    pub signup_plan: Plan,
    /// Attempts charged per caller.
    pub throttle: Throttle,
    /// Password hashing, bounded.
    pub hashing: Hashing,
}

/// The caller's address as the throttle names it.
fn address(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Your name (1–100 characters).
    pub name: String,
    /// Your sign-in address.
    pub email: String,
    /// 8 to 1024 characters.
    pub password: String,
}

/// A new account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// A sign-in token (JWT, 24 hours): `Authorization: Bearer …`.
    pub token: String,
    /// The new tenant.
    pub tenant_id: String,
    /// An agent key for `beamd http` / `beamd tcp`, shown once.
    pub gateway_api_key: String,
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if !(8..=1024).contains(&p.chars().count()) {
        return Err(ApiError::invalid(
            "the password needs 8 to 1024 characters",
            serde_json::json!({ "password": "length" }),
        ));
    }
    Ok(())
}

fn now_secs(state: &ApiState) -> u64 {
    state.core.now_ms() / 1000
}

/// Sign up: a tenant, its account, a sign-in token and an agent key.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts", request_body = Register,
    responses((status = 201, body = Registered), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    state: Arc<ApiState>,
    peer: Option<SocketAddr>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, Registered), ApiError> {
    if !state.accounts.signup {
        return Err(ApiError::forbidden("sign-up is disabled on this edge"));
    }
    let req: Register = parse(body)?;
    check_password(&req.password)?;
    let email = req.email.trim().to_ascii_lowercase();
    let from = address(peer);
    let _charged = state.accounts.throttle.charge(
        sign_up_charges(&email, &from),
        "too many sign-ups; try again later",
    )?;
    if state.core.queries().account_by_email(&email).is_some() {
        return Err(super::error::ApiError::from(
            crate::domain::DomainError::Conflict("an account with this email exists".into()),
        ));
    }
    let hash = state.accounts.hashing.hash(req.password).await?;
    let slug = format!("u{:012x}", fastrand::u64(..) >> 16);
    let tenant = state
        .core
        .create_tenant(CreateTenant {
            name: req.name.chars().take(100).collect(),
            tunnel_base: format!("{slug}.{}", state.accounts.tunnel_base),
            plan: state.accounts.signup_plan.clone(),
            slug,
        })
        .await?;
    let account = state
        .core
        .register_account(&tenant.id, &email, &req.name, &hash)
        .await?;
    // A sign-up is granted its own tenant's manage scope.
    let (key, secret) = state
        .core
        .issue_key(
            &tenant.id,
            "sign-up key",
            KeyKind::Agent,
            crate::domain::Scopes::of(&[Scope::Manage]),
            None,
            Scope::Manage,
        )
        .await?;
    state.settle().await?;
    state.accounts.throttle.remember(&email, &from);
    Ok((
        StatusCode::CREATED,
        Registered {
            token: state.accounts.jwt.issue(&account, now_secs(&state))?,
            tenant_id: tenant.id,
            gateway_api_key: format!("{}.{}", key.id, secret.expose()),
        },
    ))
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Sign-in address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A sign-in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedIn {
    /// A sign-in token (JWT, 24 hours).
    pub token: String,
    /// The account's tenant.
    pub tenant_id: String,
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = Login,
    responses((status = 200, body = LoggedIn), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    state: Arc<ApiState>,
    peer: Option<SocketAddr>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, LoggedIn), ApiError> {
    let req: Login = parse(body)?;
    let email = req.email.trim().to_ascii_lowercase();
    let from = address(peer);
    let throttle = &state.accounts.throttle;
    // Charged before the hash: concurrent tries cannot all get past the check.
    let charged = throttle.charge(
        sign_in_charges(&email, &from, throttle.known(&email, &from)),
        "too many failed sign-ins; try again later",
    )?;
    let account = state.core.queries().account_by_email(&email);
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    let valid = match state.accounts.hashing.verify(req.password, hash).await {
        Ok(valid) => valid,
        Err(busy) => {
            // No hash ran: the attempt does not count.
            charged.refund();
            return Err(busy);
        }
    };
    match account.filter(|_| valid) {
        Some(a) => {
            charged.refund();
            throttle.remember(&email, &from);
            ok(LoggedIn {
                token: state.accounts.jwt.issue(&a, now_secs(&state))?,
                tenant_id: a.tenant,
            })
        }
        None => Err(ApiError::unauthorized("wrong email or password")),
    }
}

/// `POST /auth/forgot-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Forgot {
    /// Sign-in address.
    pub email: String,
}

/// A message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// What happened.
    pub message: String,
}

/// Mail a reset link, if the address has an account. Always 200.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "accounts", request_body = Forgot,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn forgot(
    state: Arc<ApiState>,
    peer: Option<SocketAddr>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, Message), ApiError> {
    let req: Forgot = parse(body)?;
    let email = req.email.trim().to_ascii_lowercase();
    let _charged = state.accounts.throttle.charge(
        reset_charges(&email, &address(peer)),
        "too many reset requests; try again later",
    )?;
    let answer = ok(Message {
        message: "if an account has this address, a reset link is on its way".into(),
    });
    let Some(account) = state.core.queries().account_by_email(&email) else {
        return answer;
    };
    let Some(mailer) = state.accounts.mail.clone() else {
        tracing::warn!("password reset asked for, but mail is off (no --smtp-relay)");
        eprintln!("beamd edge: a password reset was asked for, but mail is off (no --smtp-relay)");
        return answer;
    };
    let secret = crate::actors::Secret::generate()?;
    let cmd = AccountCommand::RequestReset {
        token_hash: secret.hash(),
        expires_at: state.core.now_ms() + RESET_LIFETIME_MS,
    };
    state.core.account_command(&account.id, cmd).await?;
    let link = format!(
        "{}/reset-password?token={}.{}",
        state.accounts.public_url.trim_end_matches('/'),
        account.id,
        secret.expose()
    );
    let text = format!(
        "Someone asked to reset the password of your beamd account.\n\nTo choose a new one, open this link within an hour:\n\n{link}\n\nIf it was not you, ignore this mail.\n"
    );
    // Sent in the background: how long the relay takes must not tell who has an account.
    tokio::spawn(async move {
        if let Err(e) = mailer
            .send(&account.email, "Reset your beamd password", text)
            .await
        {
            tracing::warn!("reset mail not sent: {e}");
            eprintln!("beamd edge: reset mail not sent: {e}");
        }
    });
    answer
}

/// `POST /auth/reset-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// The `token` of the mailed link.
    pub token: String,
    /// The new password (8 to 1024 characters).
    pub password: String,
}

/// Choose a new password with a mailed link's token (once, within an hour).
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "accounts", request_body = Reset,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "The reset link was used already, has expired, or is not the latest one"),
        (status = 429, body = ErrorBody)))]
pub async fn reset(
    state: Arc<ApiState>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, Message), ApiError> {
    let req: Reset = parse(body)?;
    check_password(&req.password)?;
    let bad = || {
        ApiError::forbidden(
            "the reset link was used already, has expired, or is not the latest one",
        )
    };
    let (id, secret) = req.token.split_once('.').ok_or_else(bad)?;
    let token_hash = blake3::hash(secret.as_bytes()).to_hex().to_string();
    // Checked before the new password is hashed, so that guessing tokens costs
    // no hashes (the account's actor checks again, and the expiry).
    let pending = (state.core.queries().account(id))
        .and_then(|a| a.reset.clone())
        .is_some_and(|(hash, _)| hash == token_hash);
    if !pending {
        return Err(bad());
    }
    let cmd = AccountCommand::Reset {
        token_hash,
        password_hash: state.accounts.hashing.hash(req.password).await?,
    };
    state
        .core
        .account_command(id, cmd)
        .await
        .map_err(|_| bad())?;
    ok(Message {
        message: "the password is changed; sign in with it".into(),
    })
}

/// Sign out: the sign-in token presented stops working (others of the account do not).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts",
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "The bearer is an API key, not a sign-in token")),
    security(("bearer" = [])))]
pub async fn logout(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Message), ApiError> {
    let (account, claims, jwt) = state.signed_in(auth.as_deref())?;
    let cmd = AccountCommand::EndSession {
        token_id: claims.token_id(&jwt),
        expires_at: claims.exp,
    };
    state.core.account_command(&account.id, cmd).await?;
    ok(Message {
        message: "signed out: this sign-in token no longer works".into(),
    })
}

type Routes = warp::filters::BoxedFilter<(super::http::Resp,)>;

/// The `/auth` routes.
pub fn filters(s: warp::filters::BoxedFilter<(Arc<ApiState>,)>) -> Vec<Routes> {
    use super::http::{body, respond};
    use warp::Filter;
    let auth = |name: &'static str| {
        warp::path("api")
            .and(warp::path("v1"))
            .and(warp::path("auth"))
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::post())
    };
    vec![
        auth("register")
            .and(s.clone())
            .and(warp::ext::optional::<super::http::Peer>())
            .and(body())
            .then(|st, peer: Option<super::http::Peer>, b| async move {
                respond(register(st, peer.map(|p| p.0), b).await)
            })
            .boxed(),
        auth("login")
            .and(s.clone())
            .and(warp::ext::optional::<super::http::Peer>())
            .and(body())
            .then(|st, peer: Option<super::http::Peer>, b| async move {
                respond(login(st, peer.map(|p| p.0), b).await)
            })
            .boxed(),
        auth("forgot-password")
            .and(s.clone())
            .and(warp::ext::optional::<super::http::Peer>())
            .and(body())
            .then(|st, peer: Option<super::http::Peer>, b| async move {
                respond(forgot(st, peer.map(|p| p.0), b).await)
            })
            .boxed(),
        auth("logout")
            .and(s.clone())
            .and(warp::header::optional::<String>("authorization"))
            .then(|st, a| async move { respond(logout(st, a).await) })
            .boxed(),
        auth("reset-password")
            .and(s.clone())
            .and(body())
            .then(|st, b| async move { respond(reset(st, b).await) })
            .boxed(),
    ]
}
