//! Forwarding a gateway request to a service's `http://` upstream URL: the
//! request path is appended to the URL's path, `Host` becomes the
//! upstream's, and the service's timeout bounds the connect and the answer.
//! The connection goes only where the edge's egress policy allows.

use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;

use crate::egress::{Egress, EgressError};

/// Why forwarding failed: a timeout (504), the egress policy (502 with the
/// reason), or anything else (502).
pub(super) enum Failed {
    Timeout,
    Refused(String),
    Other(String),
}

/// Sends `req` to `url` and returns the upstream's answer.
pub(super) async fn forward<B>(
    mut req: Request<B>,
    url: &str,
    timeout: Duration,
    egress: &Egress,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Failed>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let other = |e: &dyn std::fmt::Display| Failed::Other(e.to_string());
    let base: Uri = url.parse().map_err(|e| other(&e))?;
    let authority = base
        .authority()
        .ok_or_else(|| Failed::Other(format!("{url} has no host")))?
        .clone();
    let path = format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    *req.uri_mut() = path.parse().map_err(|e| other(&e))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| other(&e))?;
    req.headers_mut().insert(HOST, host);
    let port = authority.port_u16().unwrap_or(80);
    let exchange = async {
        let stream = match egress.connect(authority.host(), port).await {
            Ok(stream) => stream,
            Err(e @ EgressError::Refused { .. }) => return Err(Failed::Refused(e.to_string())),
            Err(e) => return Err(other(&e)),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| other(&e))?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| other(&e))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(Failed::Timeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(resp)) => Ok(resp.map(|b| b.boxed())),
    }
}
