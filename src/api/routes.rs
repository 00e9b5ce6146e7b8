//! The route table: path and method first, then the handler authenticates,
//! so an unknown path is a 404, a known one with the wrong method a 405, and
//! everything else the handler's own answer. CORS is open (`*`).

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::http::{body, error, json, raw_query, respond, Resp};
use super::{
    dashboard, domains, feed, gateway, metrics, openapi, replay, request_detail, tenants, tlog,
    tokens, tunnels, usage, workspace, ApiState,
};

type Routes = warp::filters::BoxedFilter<(Resp,)>;

/// Every route, with CORS and JSON errors.
pub fn all(
    state: Arc<ApiState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let s = warp::any().map(move || state.clone()).boxed();
    let auth = warp::header::optional::<String>("authorization");
    let v1 = || warp::path("api").and(warp::path("v1"));
    let with = |r: Routes, more: Routes| r.or(more).unify().boxed();

    let workspace = v1()
        .and(warp::path!("workspace"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|st, a| async move { respond(workspace::workspace(st, a).await) })
        .boxed();
    let me = v1()
        .and(warp::path!("me"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|st, a| async move { respond(workspace::me(st, a).await) })
        .boxed();
    let status = v1()
        .and(warp::path!("status"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|st, a| async move { respond(workspace::status(st, a).await) })
        .boxed();
    let nodes = v1()
        .and(warp::path!("nodes"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|st, a| async move { respond(workspace::nodes(st, a).await) })
        .boxed();

    let tokens_list = v1()
        .and(warp::path!("tokens"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(tokens::list(st, a, q).await) })
        .boxed();
    let tokens_create = v1()
        .and(warp::path!("tokens"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|st, a, b| async move { respond(tokens::create(st, a, b).await) })
        .boxed();
    let tokens_revoke = v1()
        .and(warp::path!("tokens" / String))
        .and(warp::delete())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(tokens::revoke(st, a, id).await) })
        .boxed();
    let tokens_limit = v1()
        .and(warp::path!("tokens" / String / "limit"))
        .and(warp::put())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|id, st, a, b| async move { respond(tokens::set_limit(st, a, id, b).await) })
        .boxed();
    let tokens_reset = v1()
        .and(warp::path!("tokens" / String / "reset"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(tokens::reset(st, a, id).await) })
        .boxed();
    let subscribe = v1()
        .and(warp::path!("subscribe" / String))
        .and(warp::get())
        .and(s.clone())
        .and(warp::header::optional::<String>("accept"))
        .then(|key, st, accept: Option<String>| async move {
            match tokens::subscribe(st, key).await {
                Ok((_, cfg)) if accept.as_deref().is_some_and(|a| a.contains("text/plain")) => {
                    let mut r = Resp::new(format!("{}\n", cfg.link).into());
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    r
                }
                other => respond(other),
            }
        })
        .boxed();

    let tunnels_list = v1()
        .and(warp::path!("tunnels"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(tunnels::list(st, a, q).await) })
        .boxed();
    let tunnels_get = v1()
        .and(warp::path!("tunnels" / String))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(tunnels::get(st, a, id).await) })
        .boxed();
    let tunnels_update = v1()
        .and(warp::path!("tunnels" / String))
        .and(warp::patch())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|id, st, a, b| async move { respond(tunnels::update(st, a, id, b).await) })
        .boxed();
    let tunnels_release = v1()
        .and(warp::path!("tunnels" / String))
        .and(warp::delete())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(tunnels::release(st, a, id).await) })
        .boxed();

    let usage_now = v1()
        .and(warp::path!("usage"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(usage::usage(st, a, q).await) })
        .boxed();
    let usage_history = v1()
        .and(warp::path!("usage" / "history"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(usage::history(st, a, q).await) })
        .boxed();
    let requests = v1()
        .and(warp::path!("requests"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(usage::requests(st, a, q).await) })
        .boxed();
    let request_detail = v1()
        .and(warp::path!("requests" / String))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(request_detail::detail(st, a, id).await) })
        .boxed();
    let replay = v1()
        .and(warp::path!("requests" / String / "replay"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|id, st, a, b| async move { respond(replay::replay(st, a, id, b).await) })
        .boxed();
    let logs = v1()
        .and(warp::path!("logs"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(usage::logs(st, a, q).await) })
        .boxed();

    let feed = v1()
        .and(warp::path!("events" / "stream"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { feed::stream(st, a, q).await.unwrap_or_else(error) })
        .boxed();

    let log = tlog::routes(s.clone());

    let domains_list = v1()
        .and(warp::path!("domains"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(domains::list(st, a, q).await) })
        .boxed();
    let domains_add = v1()
        .and(warp::path!("domains"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|st, a, b| async move { respond(domains::add(st, a, b).await) })
        .boxed();
    let domains_verify = v1()
        .and(warp::path!("domains" / String / "verify"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(domains::verify(st, a, id).await) })
        .boxed();
    let domains_remove = v1()
        .and(warp::path!("domains" / String))
        .and(warp::delete())
        .and(s.clone())
        .and(auth)
        .then(|id, st, a| async move { respond(domains::remove(st, a, id).await) })
        .boxed();

    let tenants_list = v1()
        .and(warp::path!("tenants"))
        .and(warp::get())
        .and(s.clone())
        .and(auth)
        .and(raw_query())
        .then(|st, a, q| async move { respond(tenants::list(st, a, q).await) })
        .boxed();
    let tenants_create = v1()
        .and(warp::path!("tenants"))
        .and(warp::post())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|st, a, b| async move { respond(tenants::create(st, a, b).await) })
        .boxed();
    let tenants_plan = v1()
        .and(warp::path!("tenants" / String / "plan"))
        .and(warp::put())
        .and(s.clone())
        .and(auth)
        .and(body())
        .then(|id, st, a, b| async move { respond(tenants::set_plan(st, a, id, b).await) })
        .boxed();

    let doc = v1()
        .and(warp::path!("openapi.json"))
        .and(warp::get())
        .map(|| json(StatusCode::OK, openapi::document()))
        .boxed();
    let dashboard = warp::get()
        .and(warp::path::full())
        .and_then(|path: warp::path::FullPath| async move {
            match dashboard::asset(path.as_str().trim_start_matches('/')) {
                Some((kind, body)) => Ok(dashboard::serve(kind, body)),
                None => Err(warp::reject::not_found()),
            }
        })
        .boxed();
    let prometheus = warp::path!("metrics")
        .and(warp::get())
        .and(s.clone())
        .then(metrics::render)
        .boxed();

    let routes = [
        workspace,
        me,
        status,
        nodes,
        tokens_list,
        tokens_create,
        tokens_revoke,
        tokens_limit,
        tokens_reset,
        subscribe,
        tunnels_list,
        tunnels_get,
        tunnels_release,
        tunnels_update,
        usage_now,
        usage_history,
        requests,
        request_detail,
        replay,
        logs,
        feed,
        log,
        domains_list,
        domains_add,
        domains_verify,
        domains_remove,
        tenants_list,
        tenants_create,
        tenants_plan,
        doc,
        prometheus,
        dashboard,
    ]
    .into_iter()
    .chain(gateway::filters(s.clone()))
    .chain(super::accounts::filters(s.clone()))
    .reduce(with)
    .unwrap_or_else(|| {
        warp::any()
            .map(|| error(ApiError::not_found("route")))
            .boxed()
    });

    storage_guard(s)
        .and(routes)
        .recover(recover)
        .unify()
        .with(warp::wrap_fn(name_allowed_methods))
}

/// CORS as the API promises it: `Access-Control-Allow-Origin: *` on every
/// answer and preflight. The API takes bearer tokens, never cookies, so no
/// origin is trusted more than another and nothing varies by origin.
/// Preflights allow every method and request header the document uses;
/// browsers may read `Retry-After` (429, 503) and `Allow` (405).
pub fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER, header::ALLOW])
        .max_age(std::time::Duration::from_secs(600))
}

/// A 405 names the methods its path takes (`Allow`, RFC 9110 §15.5.6), as
/// the document gives them; paths outside it (the dashboard, `/metrics`)
/// are read-only.
fn name_allowed_methods<F>(routes: F) -> impl Filter<Extract = (Resp,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Resp,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    warp::path::full()
        .and(routes)
        .map(|path: warp::path::FullPath, mut resp: Resp| {
            if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                let methods = openapi::methods_of(path.as_str()).unwrap_or_else(|| "GET".into());
                if let Ok(v) = HeaderValue::from_str(&methods) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            resp
        })
}

/// A write refused because the data dir's disk is short of space.
#[derive(Debug)]
struct StorageShort(String);
impl warp::reject::Reject for StorageShort {}

/// Lets reads through always and writes only while the disk has room.
fn storage_guard(
    s: warp::filters::BoxedFilter<(Arc<ApiState>,)>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(s)
        .and_then(|method: Method, state: Arc<ApiState>| async move {
            match state.disk.short() {
                Some(why) if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) => {
                    Err(warp::reject::custom(StorageShort(why)))
                }
                _ => Ok(()),
            }
        })
        .untuple_one()
}

/// Turns warp's rejections into the JSON error format.
async fn recover(rejection: Rejection) -> Result<Resp, Infallible> {
    let e = if rejection.is_not_found() {
        ApiError::not_found("route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::method_not_allowed()
    } else if let Some(h) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::invalid(
            format!("bad header: {h}"),
            serde_json::json!({ "header": h.name() }),
        )
    } else if let Some(StorageShort(why)) = rejection.find() {
        ApiError::insufficient_storage(why.clone())
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error(e))
}
