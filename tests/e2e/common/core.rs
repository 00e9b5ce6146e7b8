//! A core on the real sled log, and the tunnels, plans and tenants the core tests use.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use beamd::actors::{Core, CoreConfig, Timings};
use beamd::data_dir::DataDir;
use beamd::domain::{CreateTenant, OpenTunnel, PortRequest};
use beamd_events::log::SledLog;
use beamd_events::vocabulary::{Plan, TransportKind, TunnelProtocol};
use beamd_events::{Durability, SystemClock};
use beamd_snapshots::SnapshotPolicy;

/// A core on a real data dir.
pub struct Running {
    pub core: Core,
    pub _data: DataDir,
}

pub async fn start(dir: &std::path::Path, timings: Timings, every: u64) -> Result<Running> {
    let data = DataDir::create(dir)?;
    let (log, _) = SledLog::open(data.log_store()?, Arc::new(SystemClock), Durability::Always)?;
    let mut config = CoreConfig::new(
        Arc::new(log),
        Arc::new(data.snapshots()?),
        Arc::new(SystemClock),
    );
    config.index = Some(beamd::projections::InspectorIndex::open(data.db())?);
    config.timings = timings;
    config.policy = SnapshotPolicy {
        every_events: every,
        on_shutdown: true,
    };
    Ok(Running {
        core: Core::start(config).await?,
        _data: data,
    })
}

pub fn plan() -> Plan {
    Plan {
        name: "pro".into(),
        max_tunnels: Some(10),
        max_domains: Some(2),
        bandwidth_bytes_per_month: None,
        max_pending_domains: None,
    }
}

pub fn tcp(port: u16) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Tcp,
        name: None,
        port: PortRequest::Exact {
            port,
            from: 1,
            to: u16::MAX,
        },
        transport: TransportKind::Quic,
        node: "node_a".into(),
        local_addr: "127.0.0.1:5432".into(),
        pool: None,
    }
}

pub fn http(name: &str) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Http,
        name: Some(name.into()),
        port: PortRequest::None,
        ..tcp(0)
    }
}

pub fn fast() -> Timings {
    Timings {
        idle: Duration::from_secs(60),
    }
}

pub async fn tenant(core: &Core, slug: &str) -> Result<String> {
    let t = core
        .create_tenant(CreateTenant {
            slug: slug.into(),
            name: slug.into(),
            plan: plan(),
            tunnel_base: format!("{slug}.localhost"),
        })
        .await?;
    Ok(t.id)
}
