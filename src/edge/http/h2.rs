//! HTTP/2 at the public ingress: one connection builder that speaks
//! HTTP/1.1 and HTTP/2 on the same port (h2 chosen by ALPN over TLS, h2c
//! by its preface on plain HTTP), its limits, and the rewrite of an HTTP/2
//! request into the HTTP/1.1 the tunnel carries to the service. The limits
//! themselves are settings of the data plane (`context.rs`).

use std::time::Duration;

use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;

use crate::edge::context::H2Limits;

/// Streams the server may reset for a client's protocol errors before it
/// ends the connection.
pub const MAX_ERROR_RESETS: usize = 1024;

/// The public connection builder: HTTP/1.1 with the header timeout (against
/// slowloris), HTTP/2 with `limits`.
pub fn builder(header_timeout: Option<Duration>, limits: &H2Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    if let Some(limit) = header_timeout {
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limit);
    }
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.max_header_list)
        .max_pending_accept_reset_streams(limits.max_pending_resets)
        .max_local_error_reset_streams(MAX_ERROR_RESETS);
    b
}

/// An HTTP/2 request as the HTTP/1.1 the tunnel carries: its `:authority`
/// as `Host`, its target in origin form. HTTP/1 requests are left alone.
pub fn to_http1<B>(req: &mut Request<B>) {
    if req.version() < Version::HTTP_2 {
        return;
    }
    *req.version_mut() = Version::HTTP_11;
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if let Some(a) = authority {
        if let Ok(v) = HeaderValue::from_str(&a) {
            req.headers_mut().entry(HOST).or_insert(v);
        }
    }
    let target =
        (req.uri().path_and_query()).map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    if let Ok(uri) = target.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
}

/// A request as HTTP/2 for a service that speaks h2c: the target in
/// absolute form (`:scheme` and `:authority` come from it), no `Host`.
pub fn to_h2c<B>(req: &mut Request<B>) {
    *req.version_mut() = Version::HTTP_2;
    let host = req
        .headers_mut()
        .remove(HOST)
        .and_then(|h| h.to_str().ok().map(str::to_string));
    let target = (req.uri().path_and_query()).map_or("/", |p| p.as_str());
    if let Some(uri) = host.and_then(|h| format!("http://{h}{target}").parse::<Uri>().ok()) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http2_request_becomes_origin_form_with_a_host() {
        let mut req = Request::get("https://app.localhost:8443/a/b?c=1")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        to_http1(&mut req);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri().to_string(), "/a/b?c=1");
        assert_eq!(req.headers()[HOST], "app.localhost:8443");
        let mut plain = Request::get("/x").header(HOST, "h").body(()).unwrap();
        to_http1(&mut plain);
        assert_eq!(
            (plain.uri().to_string(), plain.version()),
            ("/x".into(), Version::HTTP_11)
        );
    }
}
