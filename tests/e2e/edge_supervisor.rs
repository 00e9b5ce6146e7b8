//! A failed transport listener is restarted by the edge supervisor on the
//! address it had, and agents can connect again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use beamd::actors::{ask, Core, CoreConfig};
use beamd::data_dir::DataDir;
use beamd::edge::{EdgeContext, EdgeSettings, EdgeSupervisor, EdgeSupervisorMsg, ListenerSpec};
use beamd_events::log::SledLog;
use beamd_events::vocabulary::TransportKind;
use beamd_events::{Durability, SystemClock};
use beamd_transports::tls::EdgeIdentity;
use beamd_transports::{TcpTransport, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_listener_is_restarted_where_it_was() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::create(dir.path())?;
    let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
    let core = Arc::new(
        Core::start(CoreConfig::new(
            Arc::new(log),
            Arc::new(data.snapshots()?),
            Arc::new(SystemClock),
        ))
        .await?,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut settings = EdgeSettings::new("127.0.0.1".parse()?, "127.0.0.1");
    settings.tcp_ports = (42_000, 42_099);
    settings.window = Duration::from_millis(200);
    let ctx = Arc::new(EdgeContext::new(
        core.clone(),
        "node_test".into(),
        settings,
        shutdown,
    ));
    let identity = Arc::new(EdgeIdentity::generate(&[])?);
    let (supervisor, _) = ractor::Actor::spawn(None, EdgeSupervisor, (identity, ctx)).await?;
    let spec = ListenerSpec {
        kind: TransportKind::Tcp,
        addr: "127.0.0.1:0".parse()?,
        tls: false,
    };
    let local = ask(&supervisor, |r| EdgeSupervisorMsg::Listen(spec, r))
        .await?
        .map_err(anyhow::Error::msg)?;
    TcpTransport::plain().connect(local).await?;

    let listeners = ask(&supervisor, EdgeSupervisorMsg::Listeners).await?;
    ensure!(listeners.len() == 1);
    listeners[0]
        .cast(beamd::edge::ListenerMsg::AcceptLoopEnded)
        .map_err(|_| anyhow::anyhow!("cast"))?;
    let mut restarts = 0;
    for _ in 0..200 {
        restarts = ask(&supervisor, EdgeSupervisorMsg::Restarts).await?;
        if restarts == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(
        restarts == 1,
        "the supervisor restarted {restarts} listeners"
    );
    let again = ask(&supervisor, EdgeSupervisorMsg::Listeners).await?;
    ensure!(
        again.len() == 1 && again[0].get_id() != listeners[0].get_id(),
        "a new listener took over: {} listeners, ids {:?} vs {:?}",
        again.len(),
        again.iter().map(|a| a.get_id()).collect::<Vec<_>>(),
        listeners[0].get_id()
    );
    let local_again = ask(&again[0], beamd::edge::ListenerMsg::Local).await?;
    ensure!(
        local_again == local,
        "restarted on {local_again}, not {local}"
    );
    TcpTransport::plain().connect(local).await?;
    supervisor.stop(None);
    core.shutdown().await?;
    Ok(())
}
