//! Sign-in in front of an HTTP tunnel (OpenID Connect): a request without
//! a valid session is sent to the provider (a browser's GET) or refused
//! with 401 (anything else, WebSocket upgrades included); the provider
//! sends the browser back to `/.beamd/oidc/callback` on the tunnel's own
//! host, where the edge finishes the sign-in and sets its session cookie;
//! `/.beamd/oidc/logout` ends it. A signed-in request reaches the service
//! with `X-Beamd-User` and `X-Beamd-Email` set by the edge (whatever the
//! client sent under those names is dropped for every tunnel), and without
//! the edge's cookies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::domain::Denied;
use crate::edge::context::EdgeContext;
use crate::edge::oidc::{Identity, Pending, Provider};

/// Where the provider sends the browser back to, on the tunnel's host.
pub const CALLBACK: &str = "/.beamd/oidc/callback";
/// Where a signed-in person signs out.
pub const LOGOUT: &str = "/.beamd/oidc/logout";

/// The signed-in person's subject at the provider.
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-beamd-user");
/// Their email, when the provider gave one.
pub const EMAIL_HEADER: HeaderName = HeaderName::from_static("x-beamd-email");

/// The session cookie.
const SESSION: &str = "beamd_session";
/// The cookie of a sign-in under way (path: the callback only).
const PENDING: &str = "beamd_sign_in";

/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a sign-in may take at the provider.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);

type Body = BoxBody<Bytes, hyper::Error>;

/// What becomes of a request to a tunnel behind sign-in.
pub(super) enum Gate {
    /// Signed in (the name the inspector records): on to the service.
    Pass(String),
    /// Answered by the edge; a refusal (recorded with why) or the edge's
    /// own sign-in pages (not one of the tunnel's requests).
    Answer {
        response: Response<Body>,
        refused: Option<Denied>,
        user: Option<String>,
    },
}

/// Drops identity headers a client sent: only the edge sets them.
pub(super) fn strip_identity(headers: &mut HeaderMap) {
    headers.remove(USER_HEADER);
    headers.remove(EMAIL_HEADER);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a pending sign-in keeps, with when it lapses.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed<T> {
    until: u64,
    value: T,
}

/// Decides a request for `host`, served by a tunnel behind `provider`.
pub(super) async fn gate<B>(
    ctx: &EdgeContext,
    provider: &Provider,
    req: &mut Request<B>,
    host: &str,
    websocket: bool,
) -> Gate {
    match req.uri().path() {
        CALLBACK => return callback(ctx, provider, req, host).await,
        LOGOUT => return logout(ctx, provider),
        _ => {}
    }
    let session = cookie(req.headers(), SESSION)
        .and_then(|text| ctx.settings.cookies.open::<Identity>("session", host, text))
        .filter(|id| id.until > now() && provider.issued(id));
    match session {
        Some(identity) => {
            // The rule is read on every request: a narrower allow list
            // (the agent reconnected with one) shuts out sessions made before.
            if let Err(why) = provider
                .rule
                .admits(identity.email.as_deref(), identity.verified)
            {
                let response = not_allowed(ctx, host, &identity);
                return Gate::Answer {
                    response,
                    refused: Some(why),
                    user: Some(identity.name().to_string()),
                };
            }
            let headers = req.headers_mut();
            drop_own_cookies(headers);
            if let Ok(v) = HeaderValue::from_str(&identity.sub) {
                headers.insert(USER_HEADER, v);
            }
            if let Some(Ok(v)) = identity.email.as_deref().map(HeaderValue::from_str) {
                headers.insert(EMAIL_HEADER, v);
            }
            Gate::Pass(identity.name().to_string())
        }
        None => {
            let browser = matches!(*req.method(), Method::GET | Method::HEAD) && !websocket;
            let response = if browser {
                let back = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                start(ctx, provider, host, back)
            } else {
                text(
                    StatusCode::UNAUTHORIZED,
                    &format!(
                        "this tunnel needs you to sign in: open {} in a browser",
                        ctx.settings.url(host)
                    ),
                )
            };
            Gate::Answer {
                response,
                refused: Some(Denied::SignIn),
                user: None,
            }
        }
    }
}

/// Sends the browser to the provider, keeping the sign-in's secrets sealed
/// in a cookie only the callback gets.
fn start(ctx: &EdgeContext, provider: &Provider, host: &str, back: String) -> Response<Body> {
    let redirect = format!("{}{CALLBACK}", ctx.settings.url(host));
    let (url, pending) = match provider.start(&redirect, back) {
        Ok(started) => started,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("cannot sign in: {e}")),
    };
    let sealed = Sealed {
        until: now() + PENDING_LIFETIME.as_secs(),
        value: pending,
    };
    let Ok(value) = ctx.settings.cookies.seal("sign-in", host, &sealed) else {
        return no_randomness();
    };
    let mut response = redirect_to(&url);
    set_cookie(
        ctx,
        &mut response,
        PENDING,
        &value,
        CALLBACK,
        PENDING_LIFETIME.as_secs(),
    );
    response
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's answer: the code is exchanged, the ID token checked, the
/// person checked against the tunnel's rule, and the session set.
async fn callback<B>(ctx: &EdgeContext, provider: &Provider, req: &Request<B>, host: &str) -> Gate {
    let refused = |status, message: String, why| Gate::Answer {
        response: text(status, &message),
        refused: Some(why),
        user: None,
    };
    let query: CallbackQuery = match serde_urlencoded::from_str(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("a bad callback: {e}"),
                Denied::SignIn,
            )
        }
    };
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        let message = format!("the provider did not sign you in: {error} {detail}");
        return refused(StatusCode::FORBIDDEN, message, Denied::SignIn);
    }
    let pending = cookie(req.headers(), PENDING)
        .and_then(|text| (ctx.settings.cookies).open::<Sealed<Pending>>("sign-in", host, text))
        .filter(|p| p.until > now());
    let (Some(code), Some(state), Some(pending)) = (query.code, query.state, pending) else {
        let message = format!(
            "this sign-in was not started here, or took too long: open {} again",
            ctx.settings.url(host)
        );
        return refused(StatusCode::BAD_REQUEST, message, Denied::SignIn);
    };
    let back = pending.value.back.clone();
    let redirect = format!("{}{CALLBACK}", ctx.settings.url(host));
    let until = now() + SESSION_LIFETIME.as_secs();
    let identity = match provider
        .finish(&redirect, &code, &state, pending.value, until)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::info!(%host, error = %e, "a sign-in failed");
            return refused(
                StatusCode::FORBIDDEN,
                format!("the sign-in failed: {e}"),
                Denied::SignIn,
            );
        }
    };
    if let Err(why) = provider
        .rule
        .admits(identity.email.as_deref(), identity.verified)
    {
        return Gate::Answer {
            response: not_allowed(ctx, host, &identity),
            refused: Some(why),
            user: Some(identity.name().to_string()),
        };
    }
    let back = match back.starts_with('/') && !back.starts_with("//") {
        true => back,
        false => "/".to_string(),
    };
    let Ok(value) = ctx.settings.cookies.seal("session", host, &identity) else {
        return Gate::Answer {
            response: no_randomness(),
            refused: Some(Denied::SignIn),
            user: Some(identity.name().to_string()),
        };
    };
    let mut response = redirect_to(&back);
    set_cookie(
        ctx,
        &mut response,
        SESSION,
        &value,
        "/",
        SESSION_LIFETIME.as_secs(),
    );
    set_cookie(ctx, &mut response, PENDING, "", CALLBACK, 0);
    Gate::Answer {
        response,
        refused: None,
        user: Some(identity.name().to_string()),
    }
}

/// Ends the session here, then at the provider if it says how.
fn logout(ctx: &EdgeContext, provider: &Provider) -> Gate {
    let mut response = match provider.end_session() {
        Some(url) => redirect_to(&url),
        None => text(StatusCode::OK, "you are signed out"),
    };
    set_cookie(ctx, &mut response, SESSION, "", "/", 0);
    Gate::Answer {
        response,
        refused: None,
        user: None,
    }
}

fn not_allowed(ctx: &EdgeContext, host: &str, identity: &Identity) -> Response<Body> {
    let mut response = text(
        StatusCode::FORBIDDEN,
        &format!(
            "{} may not use this tunnel; sign out at {}{LOGOUT} to sign in as someone else",
            identity.name(),
            ctx.settings.url(host)
        ),
    );
    // The session stays: it names someone; the rule may yet let them in.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The system gave no random bytes for a cookie's nonce.
fn no_randomness() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the edge cannot make a sign-in cookie now; try again shortly",
    )
}

fn redirect_to(url: &str) -> Response<Body> {
    let mut response = text(StatusCode::FOUND, "");
    if let Ok(v) = HeaderValue::from_str(url) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let body = match message.is_empty() {
        true => Bytes::new(),
        false => Bytes::from(format!("{message}\n")),
    };
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Sets a host-only cookie (no `Domain`: never sent to another host),
/// `HttpOnly`, `SameSite=Lax` (the provider's redirect back is a top-level
/// navigation), `Secure` when the edge serves HTTPS; `max_age` 0 removes it.
fn set_cookie<B>(
    ctx: &EdgeContext,
    response: &mut Response<B>,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    let secure = if ctx.settings.https { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

/// The value of cookie `name` in the request (HTTP/2 may split cookies over
/// several headers).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Removes the edge's own cookies from what the service gets.
fn drop_own_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && name != SESSION && name != PENDING
        })
        .map(str::to_string)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edges_cookies_are_found_and_kept_from_the_service() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; beamd_session=xyz"));
        headers.append(COOKIE, HeaderValue::from_static("beamd_sign_in=p; b=2"));
        assert_eq!(cookie(&headers, SESSION), Some("xyz"));
        assert_eq!(cookie(&headers, PENDING), Some("p"));
        assert_eq!(cookie(&headers, "c"), None);
        drop_own_cookies(&mut headers);
        assert_eq!(headers.get_all(COOKIE).iter().count(), 1);
        assert_eq!(headers.get(COOKIE).unwrap(), "a=1; b=2");
        let mut only_ours = HeaderMap::new();
        only_ours.append(COOKIE, HeaderValue::from_static("beamd_session=xyz"));
        drop_own_cookies(&mut only_ours);
        assert!(only_ours.get(COOKIE).is_none());
    }
}
