//! An HTTP/2 client of an HTTP/1.1 service behind a tunnel: its public
//! connection keeps the upstream connections through the tunnel and hands
//! each new stream an idle one, counted at the service.

use crate::common;

use anyhow::{ensure, Result};
use common::http::start_http_agent;
use common::tunnel::start_edge;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// An HTTP/1.1 service that counts the connections it accepted.
async fn counting_server() -> Result<(u16, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = hyper::service::service_fn(|_req| async {
                let body = http_body_util::Full::new(bytes::Bytes::from("counted"));
                Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), answer),
            );
        }
    });
    Ok((port, accepted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_reuses_kept_http1_connections_to_the_service() -> Result<()> {
    let (web, accepted) = counting_server().await?;
    let dir = tempfile::tempdir()?;
    let args = ["--http-listen", "127.0.0.1:0"];
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &args)?;
    let (_agent, host, public) = start_http_agent(&edge, "tcp", web, "pool", &[])?;
    let io = TokioIo::new(TcpStream::connect(public).await?);
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    let get = |mut sender: hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>| {
        let req = hyper::Request::get(format!("http://{host}/n")).body(Empty::new());
        async move {
            let resp = sender.send_request(req?).await?;
            let body = resp.into_body().collect().await?.to_bytes();
            ensure!(body == "counted", "{body:?}");
            anyhow::Ok(())
        }
    };
    for _ in 0..20 {
        get(sender.clone()).await?;
    }
    let one_by_one = accepted.load(std::sync::atomic::Ordering::SeqCst);
    ensure!(
        one_by_one == 1,
        "20 requests in turn took {one_by_one} connections"
    );
    for _ in 0..5 {
        futures::future::try_join_all((0..8).map(|_| get(sender.clone()))).await?;
    }
    let side_by_side = accepted.load(std::sync::atomic::Ordering::SeqCst);
    ensure!(
        side_by_side <= 16,
        "5 rounds of 8 concurrent requests took {side_by_side} connections in all"
    );
    Ok(())
}
