//! The API gateway's resources: `/services`, `/routes` and `/consumers`,
//! each listed as a plain array, created, partly updated and soft deleted
//! (`204 No Content`), as the gateway's own API has them.

pub mod consumers;
pub mod errors;
pub mod metrics;
pub mod routes;
pub mod services;
pub mod status;

use serde::{Deserialize, Deserializer};
use warp::http::StatusCode;

use super::error::ApiError;
use super::http::{error, Resp};

/// `204 No Content`, or the error.
pub fn no_content(result: Result<(), ApiError>) -> Resp {
    match result {
        Ok(()) => {
            let mut r = Resp::new(Vec::new().into());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => error(e),
    }
}

/// For a field of a partial update that may be set to null: absent is
/// `None`, null is `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

type Routes = warp::filters::BoxedFilter<(Resp,)>;

/// The gateway's routes in the route table.
pub fn filters(s: warp::filters::BoxedFilter<(std::sync::Arc<super::ApiState>,)>) -> Vec<Routes> {
    use super::http::{body, respond};
    use warp::Filter;
    let auth = || warp::header::optional::<String>("authorization");
    let v1 = || warp::path("api").and(warp::path("v1"));
    macro_rules! list_create {
        ($name:literal, $module:ident, $create:ident) => {
            [
                v1().and(warp::path!($name))
                    .and(warp::get())
                    .and(s.clone())
                    .and(auth())
                    .then(|st, a| async move { respond($module::list(st, a).await) })
                    .boxed(),
                v1().and(warp::path!($name))
                    .and(warp::post())
                    .and(s.clone())
                    .and(auth())
                    .and(body())
                    .then(|st, a, b| async move { respond($module::$create(st, a, b).await) })
                    .boxed(),
            ]
        };
    }
    let mut all = Vec::new();
    all.extend(list_create!("services", services, create));
    all.extend(list_create!("routes", routes, create));
    all.extend(list_create!("consumers", consumers, create));
    all.push(
        v1().and(warp::path!("errors"))
            .and(warp::get())
            .and(s.clone())
            .and(auth())
            .and(super::http::raw_query())
            .then(|st, a, q| async move { respond(errors::list(st, a, q).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("errors" / String))
            .and(warp::patch())
            .and(s.clone())
            .and(auth())
            .and(body())
            .then(|id, st, a, b| async move { no_content(errors::patch(st, a, id, b).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("errors" / String / "resolve"))
            .and(warp::post())
            .and(s.clone())
            .and(auth())
            .then(|id, st, a| async move { no_content(errors::resolve(st, a, id).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("metrics"))
            .and(warp::get())
            .and(s.clone())
            .and(auth())
            .and(super::http::raw_query())
            .then(|st, a, q| async move { respond(metrics::metrics(st, a, q).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("health"))
            .and(warp::get())
            .and(s.clone())
            .and(auth())
            .then(|st, a| async move { respond(status::health(st, a).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("gateway-status"))
            .and(warp::get())
            .and(s.clone())
            .and(auth())
            .then(|st, a| async move { respond(status::gateway_status(st, a).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("services" / String))
            .and(warp::patch())
            .and(s.clone())
            .and(auth())
            .and(body())
            .then(|id, st, a, b| async move { respond(services::update(st, a, id, b).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("routes" / String))
            .and(warp::patch())
            .and(s.clone())
            .and(auth())
            .and(body())
            .then(|id, st, a, b| async move { respond(routes::update(st, a, id, b).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("services" / String))
            .and(warp::delete())
            .and(s.clone())
            .and(auth())
            .then(|id, st, a| async move { no_content(services::delete(st, a, id).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("routes" / String))
            .and(warp::delete())
            .and(s.clone())
            .and(auth())
            .then(|id, st, a| async move { no_content(routes::delete(st, a, id).await) })
            .boxed(),
    );
    all.push(
        v1().and(warp::path!("consumers" / String))
            .and(warp::delete())
            .and(s.clone())
            .and(auth())
            .then(|id, st, a| async move { no_content(consumers::revoke(st, a, id).await) })
            .boxed(),
    );
    all
}
