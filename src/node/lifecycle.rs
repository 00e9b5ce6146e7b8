//! The edge node's lifecycle: recover the log, start the core, bootstrap the
//! first tenant, serve agents, and on a signal stop accepting, let sessions
//! end, leave, snapshot and flush.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use beamd_events::{Durability, EventLog, SystemClock};
use beamd_snapshots::SnapshotPolicy;
use beamd_transports::tls::EdgeIdentity;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admin::bootstrap;
use super::log_guard::{log_failed, log_stopped, open_log, SIGXFSZ};
use super::sweep::{release_expired, take_offline_after_restart, take_offline_on_silent_nodes};
use crate::actors::{ask, Core, CoreConfig, Timings};
use crate::api::{ApiState, Endpoint};
use crate::cli::EdgeArgs;
use crate::data_dir::DataDir;
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::NodeCommand;
use crate::edge::{
    EdgeContext, EdgeSettings, EdgeSupervisor, EdgeSupervisorMsg, ListenerSpec, TenantConnections,
};
use crate::egress::Egress;
use crate::inspector::FullCaptureSettings;
use crate::projections::InspectorIndex;

/// How long sessions get to end after the edge stops accepting.
const DRAIN: Duration = Duration::from_secs(15);

/// Installs the SIGINT and SIGTERM handlers now (not when first polled), so
/// that a signal arriving just after "up" is a clean stop rather than the
/// default kill; the future ends with the signal's name.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "interrupt",
            _ = term.recv() => "terminate",
        }
    })
}

async fn start_core(args: &EdgeArgs, dir: &DataDir, log: Arc<dyn EventLog>) -> Result<Core> {
    let mut config = CoreConfig::new(log, Arc::new(dir.snapshots()?), Arc::new(SystemClock));
    config.index = Some(InspectorIndex::open(dir.db())?);
    config.policy = SnapshotPolicy {
        every_events: args.snapshot_every,
        on_shutdown: true,
    };
    config.timings = Timings {
        idle: Duration::from_secs(args.actor_idle_secs.max(1)),
        flush_window: Duration::from_millis(args.traffic_window_ms.max(10)),
    };
    config.inspector_capacity = args.inspector_recent.max(1);
    Core::start(config).await.context("cannot start the core")
}

/// Binds the public HTTP listener, with its TLS acceptor for HTTPS.
async fn open_http(args: &EdgeArgs) -> Result<Option<(TcpListener, Option<TlsAcceptor>)>> {
    let Some(addr) = args.http_listen else {
        return Ok(None);
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let identity = EdgeIdentity::from_files(cert, key)
                .with_context(|| format!("cannot load --tls-cert {}", cert.display()))?;
            Some(TlsAcceptor::from(Arc::new(identity.https_config()?)))
        }
        _ => None,
    };
    let listener = beamd_transports::bind_tcp(addr)
        .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
    Ok(Some((listener, tls)))
}

/// What the API serves: the core, the public settings, where agents connect.
fn api_state(
    args: &EdgeArgs,
    ctx: &Arc<EdgeContext>,
    bound: &[String],
    fingerprint: String,
    accounts: crate::api::accounts::AccountSettings,
    tlog: Arc<crate::tlog::Transparency>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> ApiState {
    let agents = bound
        .iter()
        .filter_map(|b| b.split_once('='))
        .filter(|(kind, _)| ["quic", "ws", "tcp"].contains(kind))
        .filter_map(|(kind, addr)| {
            let port = addr.parse::<std::net::SocketAddr>().ok()?.port();
            Some(Endpoint {
                transport: kind.to_string(),
                address: format!("{}:{port}", ctx.settings.advertise),
            })
        })
        .collect();
    ApiState {
        core: ctx.core.clone(),
        public: ctx.settings.public_addresses(),
        dns: ctx.settings.dns.clone(),
        egress: ctx.settings.egress.clone(),
        disk: ctx.settings.disk.clone(),
        started: std::time::Instant::now(),
        node: ctx.node.clone(),
        agents,
        fingerprint,
        agent_tls: args.tls,
        metrics,
        accounts,
        tlog: Some(tlog),
        bodies: ctx.settings.full_capture.as_ref().map(|f| f.sink.clone()),
        replayer: Some(ctx.clone()),
    }
}

/// How sign-up, sign-in and reset mail work, from the flags; says so when mail is off.
fn account_settings(
    args: &EdgeArgs,
    dir: &DataDir,
    api: std::net::SocketAddr,
) -> Result<crate::api::accounts::AccountSettings> {
    use crate::api::accounts::{mail::Mailer, secrets::Hashing, secrets::JwtKey, AccountSettings};
    let mail = match args.smtp_relay {
        Some(relay) => Some(Mailer {
            relay,
            from: args
                .mail_from
                .parse()
                .with_context(|| format!("--mail-from {:?} is not a mailbox", args.mail_from))?,
        }),
        None => {
            eprintln!(
                "beamd edge: mail is off (no --smtp-relay): password-reset links are not sent"
            );
            None
        }
    };
    Ok(AccountSettings {
        signup: !args.no_signup,
        tunnel_base: args.tunnel_base.clone(),
        jwt: JwtKey::load_or_create(&dir.path().join("jwt.secret"))?,
        mail,
        public_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api}")),
        signup_plan: args.signup_plan.clone(),
        throttle: Default::default(),
        hashing: Hashing::per_core().map_err(|e| anyhow::anyhow!("{}", e.body.message))?,
    })
}

/// Runs `beamd edge` until SIGINT or SIGTERM.
pub async fn run(args: EdgeArgs) -> Result<ExitCode> {
    if args.durability == Durability::Off {
        tracing::warn!("durability is OFF: acknowledged events can be lost on a crash. Use this for benchmarks only.");
    }
    if args.listen.len() > args.transports.len() {
        anyhow::bail!(
            "{} --listen addresses for {} --transport values",
            args.listen.len(),
            args.transports.len()
        );
    }
    // First, so that what recovery and start-up record is counted.
    let metrics = match crate::api::install_metrics() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("metrics are off: {e}");
            None
        }
    };
    let dir = DataDir::create(&args.data_dir)?;
    let node = dir.node_id()?;
    let opened = open_log(&args, &dir).await?;
    // A write past a file-size limit should fail with EFBIG like any other
    // failed write (and stop the log), not kill the process with SIGXFSZ.
    let _xfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))?;
    let mut committed = opened.log.subscribe();
    let log = opened.log.clone();
    let core = Arc::new(start_core(&args, &dir, log.clone()).await?);
    let replayed = core.projections().replayed();
    take_offline_after_restart(&core, &node).await?;
    let tlog = crate::tlog::open(&args.tlog, &dir, &node)?;
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| match args.public_host {
            ip if ip.is_unspecified() => "localhost".to_string(),
            ip => ip.to_string(),
        });
    let (identity, created) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => (EdgeIdentity::from_files(cert, key)?, false),
        _ => EdgeIdentity::load_or_create(dir.path(), std::slice::from_ref(&advertise))?,
    };
    let http = open_http(&args).await?;
    let api = match args.no_api {
        true => None,
        false => Some(
            beamd_transports::bind_tcp(args.api_listen)
                .with_context(|| format!("cannot listen for the API on {}", args.api_listen))?,
        ),
    };
    let stopping = tokio_util::sync::CancellationToken::new();
    let mut settings = EdgeSettings::new(args.public_host, advertise);
    settings.tcp_ports = (args.tcp_ports.0, args.tcp_ports.1);
    settings.http_port = match &http {
        Some((l, _)) => Some(l.local_addr()?.port()),
        None => None,
    };
    settings.https = matches!(&http, Some((_, Some(_))));
    settings.capture = !args.no_capture;
    settings.full_capture = FullCaptureSettings::from_args(&args.inspect, &dir)?;
    settings.h2 = args.h2.clone();
    settings.upstream_timeout = Duration::from_secs(args.upstream_timeout_secs.max(1));
    settings.header_timeout =
        (args.header_timeout_secs > 0).then(|| Duration::from_secs(args.header_timeout_secs));
    settings.dns = DnsVerifier {
        resolver: args.dns_resolver,
        claim_ttl: args.domain_claim_ttl,
    };
    let egress = Egress::new(args.egress_allow.clone(), settings.dns.clone()).with_public_ports(
        args.public_host,
        args.tcp_ports.0,
        args.tcp_ports.1,
    );
    for own in http
        .iter()
        .map(|(l, _)| l.local_addr())
        .chain(api.iter().map(|l| l.local_addr()))
    {
        egress.add_own(own?);
    }
    settings.egress = Arc::new(egress);
    settings.trusted_proxies = args.trusted_proxies.clone();
    settings.domain_recheck = Duration::from_secs(args.domain_recheck_secs.max(1));
    settings.window = Duration::from_millis(args.traffic_window_ms.max(10));
    settings.disk = DiskGuard::new(dir.path().into(), args.min_free_disk_mib << 20);
    settings.connections = TenantConnections::new(args.max_tenant_connections);
    beamd_transports::set_fd_reserve(args.fd_reserve);
    if let Some(limit) = beamd_transports::raise_fd_limit() {
        tracing::info!(
            "open-file limit {limit}, {} kept in reserve",
            args.fd_reserve
        );
    }
    settings.disk.clone().watch(stopping.clone());
    let ctx = Arc::new(EdgeContext::new(
        core.clone(),
        node.clone(),
        settings,
        stopping.clone(),
    ));
    let mut bound = Vec::new();
    let fingerprint = identity.fingerprint();
    let (supervisor, _) =
        ractor::Actor::spawn(None, EdgeSupervisor, (Arc::new(identity), ctx.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the edge supervisor: {e}"))?;
    for (i, transport) in args.transports.iter().enumerate() {
        let addr = args
            .listen
            .get(i)
            .copied()
            .unwrap_or_else(|| transport.default_listen());
        let spec = ListenerSpec {
            kind: transport.kind(),
            addr,
            tls: args.tls,
        };
        let local = ask(&supervisor, |r| EdgeSupervisorMsg::Listen(spec, r))
            .await?
            .map_err(|e| {
                anyhow::anyhow!("cannot listen for {} on {addr}: {e}", transport.kind_name())
            })?;
        bound.push(format!("{}={local}", transport.kind_name()));
        ctx.settings.egress.add_own(local);
        crate::say!("beamd edge: listening {} on {local}", transport.kind_name());
    }
    tokio::spawn(crate::edge::follow_takeovers(ctx.clone()));
    crate::tlog::spawn(tlog.clone(), log.clone(), stopping.clone())?;
    if let Some((listener, tls)) = http {
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        bound.push(format!("{scheme}={local}"));
        crate::say!("beamd edge: listening {scheme} on {local}");
        tokio::spawn(crate::edge::accept_public_http(listener, tls, ctx.clone()));
        tokio::spawn(crate::edge::recheck_domains(ctx.clone()));
        let every = Duration::from_secs(args.health_interval_secs.max(1));
        tokio::spawn(crate::edge::probe_services(ctx.clone(), every));
        tokio::spawn(crate::edge::record_gateway_errors(ctx.clone()));
    }
    if let Some(listener) = api {
        let local = listener.local_addr()?;
        bound.push(format!("api={local}"));
        crate::say!("beamd edge: listening api on {local}");
        let accounts = account_settings(&args, &dir, local)?;
        let state = api_state(
            &args,
            &ctx,
            &bound,
            fingerprint.clone(),
            accounts,
            tlog,
            metrics,
        );
        tokio::spawn(crate::api::serve(
            listener,
            Arc::new(state),
            stopping.clone(),
            ctx.settings.header_timeout,
        ));
    }
    let join = NodeCommand::Join {
        version: env!("CARGO_PKG_VERSION").to_string(),
        public_addrs: bound,
        transports: args
            .transports
            .iter()
            .map(|t| t.kind_name().to_string())
            .collect(),
    };
    core.node_command(&node, join).await?;
    crate::say!(
        "beamd edge: certificate fingerprint {fingerprint}{}",
        if created { " (new)" } else { "" }
    );
    if let Some(boot) = bootstrap(
        &core,
        std::env::var("BEAMD_ADMIN_TOKEN").ok(),
        &args.tunnel_base,
    )
    .await?
    {
        if boot.from_env {
            crate::say!("beamd edge: admin token taken from BEAMD_ADMIN_TOKEN");
        } else {
            crate::say!(
                "beamd edge: admin token {} (shown once; keep it)",
                boot.token
            );
        }
    }
    if let Some(path) = &args.tokens {
        let n = super::tokens_file::import(&core, path).await?;
        crate::say!(
            "beamd edge: imported {n} new token(s) from {}",
            path.display()
        );
    }
    let stop = shutdown_signal()?;
    crate::say!(
        "beamd edge: node {node} up; data dir {}; log head seq {}; {replayed} events replayed from the log",
        dir.path().display(),
        log.head().seq,
    );

    let mut heartbeat = tokio::time::interval(Duration::from_secs(args.heartbeat_secs.max(1)));
    heartbeat.tick().await;
    let grace = Duration::from_secs(args.grace_secs);
    let mut sweep = tokio::time::interval((grace / 4).max(Duration::from_secs(1)));
    // A node three heartbeats late is taken for dead (kill -9, cut off).
    let silent_after = Duration::from_secs(args.heartbeat_secs.max(1) * 3);
    tokio::pin!(stop);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason,
            () = log_stopped(&mut committed) => log_failed(&opened),
            _ = heartbeat.tick() => {
                // A heartbeat not recorded (the log failing over) is not fatal:
                // a log that failed for good stops the edge above.
                if let Err(e) = core.node_command(&node, NodeCommand::Heartbeat).await {
                    tracing::warn!("heartbeat not recorded: {e}");
                }
            }
            _ = sweep.tick() => {
                // A sweep that fails (the log busy failing over) is tried again at the next tick.
                let swept = async {
                    take_offline_on_silent_nodes(&core, &node, silent_after).await?;
                    release_expired(&core, grace).await
                };
                if let Err(e) = swept.await {
                    tracing::warn!("sweeping tunnels nobody serves: {e:#}");
                }
            }
        }
    };
    // Stop accepting; sessions see the signal, record their last traffic and go offline.
    stopping.cancel();
    supervisor
        .get_cell()
        .stop_children_and_wait(None, Some(DRAIN))
        .await;
    let _ = supervisor.stop_and_wait(None, Some(DRAIN)).await;
    let drained = tokio::time::timeout(DRAIN, async {
        while !ctx.idle() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        eprintln!("beamd edge: sessions still open after {DRAIN:?}; stopping anyway");
    }
    if let Some(full) = &ctx.settings.full_capture {
        full.finish().await;
    }
    core.node_command(
        &node,
        NodeCommand::Leave {
            reason: reason.to_string(),
        },
    )
    .await?;
    core.shutdown().await?;
    crate::say!(
        "beamd edge: node {node} stopped ({reason}); log head seq {}",
        log.head().seq
    );
    Ok(ExitCode::SUCCESS)
}
