//! gRPC end to end through a real tunnel over each transport: a tonic
//! server (the standard health and reflection services) behind `beamd http
//! --upstream h2c`, a tonic client in front of the edge's public port.
//! Unary calls (with an OK and an error status), a server stream that
//! follows live updates, and a bidirectional stream where each answer comes
//! before the next question is sent, ending with its status intact.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::http::start_http_agent;
use common::tunnel::start_edge;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::health_check_response::ServingStatus as Status;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const SERVICE: &str = "beamd.test.Greeter";

/// The stream's next message, waited for at most 10 s.
async fn next<T>(s: &mut tonic::Streaming<T>) -> Result<T> {
    let item = tokio::time::timeout(Duration::from_secs(10), s.next()).await?;
    Ok(item.context("the stream ended")??)
}

/// A tonic server on 127.0.0.1 with the health and reflection services.
async fn grpc_server() -> Result<(u16, HealthReporter)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming(incoming),
    );
    Ok((port, reporter))
}

/// A channel to the edge's public port, addressed to the tunnel's host.
async fn channel(public: SocketAddr, host: &str) -> Result<Channel> {
    let origin = format!("http://{host}").parse()?;
    Ok(Endpoint::from_shared(format!("http://{public}"))?
        .origin(origin)
        .timeout(Duration::from_secs(20))
        .connect()
        .await?)
}

async fn unary_calls(ch: Channel) -> Result<()> {
    let mut health = HealthClient::new(ch);
    let ok = health
        .check(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await?;
    ensure!(ok.get_ref().status == Status::Serving as i32);
    // An error status (grpc-status in a trailers-only answer) comes through as sent.
    let missing = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .err()
        .context("an unknown service is an error")?;
    ensure!(missing.code() == tonic::Code::NotFound, "{missing:?}");
    Ok(())
}

/// Watch: the current status, then each change as the server makes it.
async fn server_stream(ch: Channel, reporter: &HealthReporter) -> Result<()> {
    let mut health = HealthClient::new(ch);
    let req = HealthCheckRequest {
        service: SERVICE.into(),
    };
    let mut updates = health.watch(req).await?.into_inner();
    ensure!(next(&mut updates).await?.status == Status::Serving as i32);
    reporter
        .set_service_status(SERVICE, ServingStatus::NotServing)
        .await;
    ensure!(next(&mut updates).await?.status == Status::NotServing as i32);
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    ensure!(next(&mut updates).await?.status == Status::Serving as i32);
    Ok(())
}

/// Reflection's bidirectional stream: a question, its answer, the next.
/// One call ends with an error status from the server (in its trailers),
/// one is half-closed by the client and ends with status OK.
async fn bidi_stream(ch: Channel) -> Result<()> {
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    for ending in ["error", "ok"] {
        let mut reflection = ServerReflectionClient::new(ch.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(ask(MessageRequest::ListServices(String::new())))
            .await?;
        let rx = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut answers = reflection.server_reflection_info(rx).await?.into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            next(&mut answers).await?.message_response
        else {
            anyhow::bail!("not a list of services");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        ensure!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
        // Asked only now, on the same stream, after the first answer came back.
        let symbol = "grpc.health.v1.Health".to_string();
        tx.send(ask(MessageRequest::FileContainingSymbol(symbol)))
            .await?;
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            next(&mut answers).await?.message_response
        else {
            anyhow::bail!("not a file descriptor");
        };
        ensure!(!files.file_descriptor_proto.is_empty());
        if ending == "error" {
            let unknown = "no.such.Symbol".to_string();
            tx.send(ask(MessageRequest::FileContainingSymbol(unknown)))
                .await?;
            let end = tokio::time::timeout(Duration::from_secs(10), answers.next()).await?;
            let status = end.context("no status")?.err().context("an error status")?;
            ensure!(
                status.code() == tonic::Code::NotFound
                    && status.message().contains("no.such.Symbol"),
                "{status:?}"
            );
        } else {
            drop(tx);
            let end = tokio::time::timeout(Duration::from_secs(10), answers.next()).await?;
            ensure!(end.is_none(), "{end:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_streaming_calls_through_each_transport() -> Result<()> {
    let (web, reporter) = grpc_server().await?;
    for transport in ["quic", "ws", "tcp"] {
        let dir = tempfile::tempdir()?;
        let args = ["--http-listen", "127.0.0.1:0"];
        let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &args)?;
        let name = format!("grpc-{transport}");
        let upstream = ["--upstream", "h2c"];
        let (_agent, host, public) = start_http_agent(&edge, transport, web, &name, &upstream)?;
        let ch = channel(public, &host).await?;
        unary_calls(ch.clone())
            .await
            .with_context(|| format!("unary over {transport}"))?;
        server_stream(ch.clone(), &reporter)
            .await
            .with_context(|| format!("server stream over {transport}"))?;
        bidi_stream(ch)
            .await
            .with_context(|| format!("bidirectional stream over {transport}"))?;
    }
    Ok(())
}
