//! The dashboard: one page and its script and style, compiled into the
//! binary and served at `/` of the API listener. It is a client of the
//! public REST API and nothing else (`dashboard/app.js`).

use warp::http::{header, HeaderValue, StatusCode};
use warp::Reply;

use super::http::Resp;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const PAGES: &str = include_str!("dashboard/pages.js");
const INSPECTOR: &str = include_str!("dashboard/inspector.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Only this origin's script and style run (inline style attributes draw the
/// meters); the page is never framed.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/// An embedded asset by its path: `/`, `/dashboard/{app,pages,inspector}.js`, `/dashboard/app.css`.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "" | "index.html" => Some(("text/html; charset=utf-8", INDEX)),
        "dashboard/app.js" => Some(("text/javascript; charset=utf-8", SCRIPT)),
        "dashboard/pages.js" => Some(("text/javascript; charset=utf-8", PAGES)),
        "dashboard/inspector.js" => Some(("text/javascript; charset=utf-8", INSPECTOR)),
        "dashboard/app.css" => Some(("text/css; charset=utf-8", STYLE)),
        _ => None,
    }
}

/// The response for an embedded asset.
pub fn serve(content_type: &'static str, body: &'static str) -> Resp {
    let mut resp = warp::reply::with_status(body, StatusCode::OK).into_response();
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let (kind, page) = asset("").unwrap();
        assert!(kind.starts_with("text/html"));
        for src in [
            "/dashboard/app.js",
            "/dashboard/pages.js",
            "/dashboard/inspector.js",
            "/dashboard/app.css",
        ] {
            assert!(page.contains(src), "{src}");
            assert!(asset(&src[1..]).is_some(), "{src} is embedded");
        }
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no CDN"
        );
        assert!(asset("dashboard/../Cargo.toml").is_none());
    }
}
