//! Shared request and response plumbing: JSON replies, strict query and body
//! parsing (unknown fields and wrong types are a 400 with details), bounded
//! bodies, timestamps and pages, and the peer of a request.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::{header, HeaderValue, StatusCode};
use warp::{Filter, Rejection};

use super::error::ApiError;

/// The peer of an API connection, as a request extension (read by sign-in's
/// failure counting, through `warp::ext`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The largest request body taken.
pub const BODY_LIMIT: u64 = 64 * 1024;
/// Page size when `limit` is not given, and the largest one allowed.
pub const DEFAULT_PAGE: usize = 50;
/// The largest `limit`.
pub const MAX_PAGE: usize = 200;

/// A response.
pub type Resp = warp::reply::Response;

/// `body` as JSON with `status`.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut resp = Resp::new(bytes.into());
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error(ApiError::internal(format!(
            "cannot encode the response: {e}"
        ))),
    }
}

/// An error as its JSON response.
pub fn error(e: ApiError) -> Resp {
    let mut resp = json(e.status, &e.body);
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A handler's outcome as a response.
pub fn respond<T: Serialize>(result: Result<(StatusCode, T), ApiError>) -> Resp {
    match result {
        Ok((status, body)) => json(status, &body),
        Err(e) => error(e),
    }
}

/// 200 with `body`.
pub fn ok<T>(body: T) -> Result<(StatusCode, T), ApiError> {
    Ok((StatusCode::OK, body))
}

/// The raw query string ("" when there is none).
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The request body, at most `BODY_LIMIT` bytes.
pub fn body() -> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = Rejection> + Clone {
    warp::body::stream().then(collect)
}

async fn collect<S, B>(stream: S) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = Box::pin(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::invalid("the body could not be read", e.to_string().into()))?;
        if out.len() as u64 + chunk.remaining() as u64 > BODY_LIMIT {
            return Err(ApiError::too_large(BODY_LIMIT));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(out))
}

/// The largest integer the API documents (OpenAPI's `int64`).
pub const MAX_INT64: u64 = i64::MAX as u64;

fn too_large(name: &str) -> ApiError {
    ApiError::invalid(
        format!("{name} must be at most {MAX_INT64}"),
        serde_json::json!({ "field": name, "maximum": MAX_INT64 }),
    )
}

/// Whether a query value is an integer past `int64`.
fn past_int64(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().map_or(true, |v| v > MAX_INT64)
}

/// Parses a query string strictly; an integer field past `int64` is
/// refused, never wrapped. Only integer fields: a string field (a `cursor`,
/// a `path`) may hold any digits.
pub fn query<T: DeserializeOwned + Serialize>(raw: &str) -> Result<T, ApiError> {
    match serde_urlencoded::from_str::<T>(raw) {
        Ok(q) => {
            // The fields as parsed: only an integer field is a number here.
            let fields = serde_json::to_value(&q)
                .map_err(|e| ApiError::internal(format!("query parameters: {e}")))?;
            match oversized(&fields, "") {
                Some(name) => Err(too_large(&name)),
                None => Ok(q),
            }
        }
        Err(e) => {
            // Past u64 an integer does not parse at all: name the field when
            // it is the one at fault (the rest parses with it at 0).
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
            for (i, (name, value)) in pairs.iter().enumerate() {
                if !past_int64(value) {
                    continue;
                }
                let mut zeroed = pairs.clone();
                zeroed[i].1 = "0".into();
                let parses = serde_urlencoded::to_string(&zeroed)
                    .is_ok_and(|raw| serde_urlencoded::from_str::<T>(&raw).is_ok());
                if parses {
                    return Err(too_large(name));
                }
            }
            Err(ApiError::invalid(
                format!("bad query parameters: {e}"),
                serde_json::json!({ "query": e.to_string() }),
            ))
        }
    }
}

/// The path (`a.b[2]`) of the first integer in `v` past `int64`.
fn oversized(v: &serde_json::Value, at: &str) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .filter(|n| *n > MAX_INT64)
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f > MAX_INT64 as f64)
                    .map(|_| 0)
            })
            .map(|_| at.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| oversized(item, &format!("{at}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, item)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            oversized(item, &path)
        }),
        _ => None,
    }
}

/// Turns every number with no fractional part that is written as a float
/// (`32.0`, `1e3`) into the integer it is, as JSON Schema reads it (an
/// `integer` is any number whose fraction is zero); whether anything changed.
fn integral_floats(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) else {
                return false;
            };
            let whole = if (0.0..=u64::MAX as f64).contains(&f) {
                serde_json::Number::from(f as u64)
            } else if (i64::MIN as f64..0.0).contains(&f) {
                serde_json::Number::from(f as i64)
            } else {
                return false;
            };
            *n = whole;
            true
        }
        // Every item is visited (no short circuit): each may need a change.
        serde_json::Value::Array(items) => items
            .iter_mut()
            .map(integral_floats)
            .fold(false, std::ops::BitOr::bitor),
        serde_json::Value::Object(fields) => fields
            .values_mut()
            .map(integral_floats)
            .fold(false, std::ops::BitOr::bitor),
        _ => false,
    }
}

/// Parses a JSON body strictly. A route that declares its body required
/// uses this: an empty body is refused.
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, ApiError>) -> Result<T, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "this route needs a JSON body",
            serde_json::json!({ "body": "missing" }),
        ));
    }
    decode(&body)
}

/// Parses a JSON body a route may go without: an empty body, or `null`,
/// reads as `{}`.
pub fn parse_optional<T: DeserializeOwned>(body: Result<Bytes, ApiError>) -> Result<T, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return decode(b"{}");
    }
    decode(&body)
}

fn decode<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| {
        ApiError::invalid(
            format!("bad request body: {e}"),
            serde_json::json!({ "body": e.to_string(), "line": e.line(), "column": e.column() }),
        )
    };
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(bad)?;
    if let Some(field) = oversized(&value, "") {
        return Err(too_large(&field));
    }
    match serde_json::from_slice(text) {
        Ok(parsed) => Ok(parsed),
        // `32.0` where an integer goes: read again as the integer it is.
        Err(_) if integral_floats(&mut value) => serde_json::from_value(value).map_err(bad),
        Err(e) => Err(bad(e)),
    }
}

/// An RFC 3339 UTC time with milliseconds, as the API shows times.
pub fn iso(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `iso` of an optional time.
pub fn iso_opt(ms: Option<u64>) -> Option<String> {
    ms.map(iso)
}

/// How every list is paged: by id, `limit` items after the `cursor` of the
/// previous page's `next`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size, checked.
    pub fn size(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                format!("limit must be 1 to {MAX_PAGE}, not {n}"),
                serde_json::json!({ "limit": n }),
            )),
        }
    }
}

/// The `{"id": …, "revoked"/"released"/"removed": true}` answers of deletions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The id.
    pub id: String,
    /// Set on `DELETE /tokens/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    /// Set on `DELETE /tunnels/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<bool>,
    /// Set on `DELETE /domains/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Q {
        cursor: Option<String>,
        page_size: Option<u64>,
    }

    fn refused(raw: &str) -> Option<serde_json::Value> {
        query::<Q>(raw)
            .err()
            .map(|e| e.body.details.unwrap_or_default())
    }

    #[test]
    fn a_string_field_takes_any_digits_an_integer_field_stops_at_int64() {
        // schemathesis's stateful phase sent /domains?cursor=999…9 (30 digits).
        let q = query::<Q>("cursor=999999999999999999999999999999").expect("a cursor");
        assert_eq!(q.cursor.as_deref(), Some("999999999999999999999999999999"));
        let q = query::<PageQuery>("cursor=18446744073709551616&limit=5").expect("a page");
        assert_eq!(q.cursor.as_deref(), Some("18446744073709551616"));
        assert_eq!(
            query::<Q>("pageSize=9223372036854775807")
                .unwrap()
                .page_size,
            Some(MAX_INT64)
        );
        // Past int64 (and past u64, which does not parse): refused, naming the field.
        for big in [
            "9223372036854775808",
            "18446744073709551616",
            "%2B99999999999999999999",
        ] {
            let details = refused(&format!("cursor=7&pageSize={big}")).expect(big);
            assert_eq!(details["field"], "pageSize", "{big}");
        }
        // Any other fault is not blamed on a large number in a string field.
        let details = refused("cursor=99999999999999999999&pageSize=x").expect("refused");
        assert!(details.get("query").is_some(), "{details}");
        assert!(refused("cursor=1&other=2").is_some());
    }
}
