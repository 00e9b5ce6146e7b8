//! The edge node's lifecycle: recover the log, start the core, bootstrap the
//! first tenant, serve agents, and on a signal stop accepting, let sessions
//! end, leave, snapshot and flush.

use std::path::Path;
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
use super::settings::NodeSettings;
use super::sweep::{release_expired, take_offline_after_restart, take_offline_on_silent_nodes};
use crate::acme::Acme;
use crate::actors::{ask, Core, CoreConfig, Timings};
use crate::api::{ApiState, Endpoint};
use crate::data_dir::DataDir;
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::NodeCommand;
use crate::edge::{
    EdgeContext, EdgeSettings, EdgeSupervisor, EdgeSupervisorMsg, ListenerSpec, PublicTls,
    TenantConnections,
};
use crate::egress::Egress;
use crate::inspector::FullCaptureSettings;
use crate::live::Live;
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

async fn start_core(cfg: &NodeSettings, dir: &DataDir, log: Arc<dyn EventLog>) -> Result<Core> {
    let mut config = CoreConfig::new(log, Arc::new(dir.snapshots()?), Arc::new(SystemClock));
    config.index = Some(InspectorIndex::open(dir.db())?);
    config.policy = SnapshotPolicy {
        every_events: cfg.snapshot_every,
        on_shutdown: true,
    };
    config.timings = Timings {
        idle: cfg.actor_idle.max(Duration::from_secs(1)),
    };
    config.inspector_capacity = cfg.inspector_recent.max(1);
    Core::start(config).await.context("cannot start the core")
}

/// Binds the public HTTP listener, with how it gets certificates for
/// HTTPS: one (`--tls-cert`), or from an ACME CA (falling back to
/// `--tls-cert`, else to the edge's own `identity`, for names it does not route).
async fn open_http(
    cfg: &NodeSettings,
    dir: &Path,
    identity: &EdgeIdentity,
) -> Result<Option<(TcpListener, Option<PublicTls>)>> {
    let Some(addr) = cfg.http_listen else {
        return Ok(None);
    };
    let fixed = match &cfg.https_cert {
        Some(files) => Some(
            EdgeIdentity::from_files(&files.cert, &files.key)
                .with_context(|| format!("cannot load --tls-cert {}", files.cert.display()))?
                .https_config()?,
        ),
        None => None,
    };
    let tls = match (&cfg.acme, fixed) {
        (Some(settings), fixed) => {
            let fallback = match fixed {
                Some(f) => f,
                None => identity.https_config()?,
            };
            let acme = Arc::new(Acme::new(settings.clone(), dir).context("cannot set up ACME")?);
            tokio::spawn(acme.clone().renew_due(Duration::from_secs(60)));
            Some(PublicTls::Acme {
                acme,
                fallback: Arc::new(fallback),
            })
        }
        (None, Some(fixed)) => Some(PublicTls::Fixed(TlsAcceptor::from(Arc::new(fixed)))),
        (None, None) => None,
    };
    let listener = beamd_transports::bind_tcp(addr)
        .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
    Ok(Some((listener, tls)))
}

/// What the API serves: the core, the public settings, where agents connect.
fn api_state(
    cfg: &NodeSettings,
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
        agent_tls: cfg.agent_tls,
        metrics,
        accounts,
        tlog: Some(tlog),
        bodies: ctx.settings.full_capture.as_ref().map(|f| f.sink.clone()),
        replayer: Some(ctx.clone()),
        acme: None,
        witnesses: None,
    }
}

/// How sign-up, sign-in and reset mail work, from the flags; says so when mail is off.
fn account_settings(
    cfg: &NodeSettings,
    dir: &DataDir,
    api: std::net::SocketAddr,
) -> Result<crate::api::accounts::AccountSettings> {
    use crate::api::accounts::{mail::Mailer, secrets::Hashing, secrets::JwtKey, AccountSettings};
    let mail = match cfg.smtp_relay {
        Some(relay) => Some(Mailer {
            relay,
            from: cfg
                .mail_from
                .parse()
                .with_context(|| format!("--mail-from {:?} is not a mailbox", cfg.mail_from))?,
        }),
        None => {
            eprintln!(
                "beamd edge: mail is off (no --smtp-relay): password-reset links are not sent"
            );
            None
        }
    };
    Ok(AccountSettings {
        signup: cfg.signup,
        tunnel_base: cfg.tunnel_base.clone(),
        jwt: JwtKey::load_or_create(&dir.path().join("jwt.secret"))?,
        mail,
        public_url: cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api}")),
        signup_plan: cfg.signup_plan.clone(),
        throttle: Default::default(),
        hashing: Hashing::per_core().map_err(|e| anyhow::anyhow!("{}", e.body.message))?,
    })
}

/// Runs `beamd edge` until SIGINT or SIGTERM.
pub async fn run(
    cfg: NodeSettings,
    mut reloads: Option<tokio::sync::mpsc::UnboundedReceiver<NodeSettings>>,
) -> Result<ExitCode> {
    if cfg.durability == Durability::Off {
        tracing::warn!("durability is OFF: acknowledged events can be lost on a crash. Use this for benchmarks only.");
    }
    // First, so that what recovery and start-up record is counted.
    let metrics = match crate::api::install_metrics() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("metrics are off: {e}");
            None
        }
    };
    let dir = DataDir::create(&cfg.data_dir)?;
    let node = dir.node_id()?;
    let opened = open_log(&cfg, &dir).await?;
    // A write past a file-size limit should fail with EFBIG like any other
    // failed write (and stop the log), not kill the process with SIGXFSZ.
    let _xfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))?;
    let mut committed = opened.log.subscribe();
    let log = opened.log.clone();
    let core = Arc::new(start_core(&cfg, &dir, log.clone()).await?);
    let replayed = core.projections().replayed();
    take_offline_after_restart(&core, &node).await?;
    let tlog = crate::tlog::open(&cfg.tlog, &dir, &node)?;
    let advertise = cfg
        .advertise
        .clone()
        .unwrap_or_else(|| match cfg.public_host {
            ip if ip.is_unspecified() => "localhost".to_string(),
            ip => ip.to_string(),
        });
    let (identity, created) = match &cfg.agent_cert {
        Some(files) => (EdgeIdentity::from_files(&files.cert, &files.key)?, false),
        None => EdgeIdentity::load_or_create(dir.path(), std::slice::from_ref(&advertise))?,
    };
    let http = open_http(&cfg, dir.path(), &identity).await?;
    let api = match cfg.api_listen {
        None => None,
        Some(addr) => Some(
            beamd_transports::bind_tcp(addr)
                .with_context(|| format!("cannot listen for the API on {addr}"))?,
        ),
    };
    let stopping = tokio_util::sync::CancellationToken::new();
    let mut settings = EdgeSettings::new(cfg.public_host, advertise);
    settings.tcp_ports = cfg.tcp_ports;
    settings.udp_ports = cfg.udp_ports;
    settings.http_port = match &http {
        Some((l, _)) => Some(l.local_addr()?.port()),
        None => None,
    };
    settings.https = matches!(&http, Some((_, Some(_))));
    settings.capture = cfg.capture;
    settings.full_capture = FullCaptureSettings::open(&cfg.inspect, &dir)?;
    settings.cookies = Arc::new(match &cfg.sign_in_key_file {
        Some(file) => crate::edge::oidc::CookieSeal::from_file(file)?,
        None => crate::edge::oidc::CookieSeal::load_or_create(dir.path())
            .context("cannot read or make the sign-in cookie key")?,
    });
    settings.h2 = cfg.h2.clone();
    settings.upstream_timeout = Live::new(cfg.upstream_timeout.max(Duration::from_secs(1)));
    settings.header_timeout = Live::new(cfg.header_timeout);
    settings.dns = DnsVerifier {
        resolver: cfg.dns_resolver,
        claim_ttl: cfg.domain_claim_ttl,
    };
    let egress = Egress::new(cfg.egress_allow.clone(), settings.dns.clone()).with_public_ports(
        cfg.public_host,
        cfg.tcp_ports.0,
        cfg.tcp_ports.1,
    );
    for own in http
        .iter()
        .map(|(l, _)| l.local_addr())
        .chain(api.iter().map(|l| l.local_addr()))
    {
        egress.add_own(own?);
    }
    settings.egress = Arc::new(egress);
    settings.trusted_proxies = Live::new(cfg.trusted_proxies.clone());
    settings.domain_recheck = cfg.domain_recheck.max(Duration::from_secs(1));
    settings.window = cfg.traffic_window.max(Duration::from_millis(10));
    settings.disk = DiskGuard::new(dir.path().into(), cfg.min_free_disk_bytes);
    settings.connections = TenantConnections::new(cfg.max_tenant_connections);
    beamd_transports::set_fd_reserve(cfg.fd_reserve);
    if let Some(limit) = beamd_transports::raise_fd_limit() {
        tracing::info!(
            "open-file limit {limit}, {} kept in reserve",
            cfg.fd_reserve
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
    for &(transport, addr) in &cfg.agent_listeners {
        let spec = ListenerSpec {
            kind: transport,
            addr,
            tls: cfg.agent_tls,
        };
        let local = ask(&supervisor, |r| EdgeSupervisorMsg::Listen(spec, r))
            .await?
            .map_err(|e| {
                anyhow::anyhow!("cannot listen for {} on {addr}: {e}", transport.as_str())
            })?;
        bound.push(format!("{}={local}", transport.as_str()));
        ctx.settings.egress.add_own(local);
        crate::say!("beamd edge: listening {} on {local}", transport.as_str());
    }
    tokio::spawn(crate::edge::follow_takeovers(ctx.clone()));
    crate::tlog::spawn(tlog.clone(), log.clone(), stopping.clone())?;
    let witnesses = (!cfg.tlog.witnesses.is_empty()).then(|| {
        let w = crate::tlog::Witnessing::new(cfg.tlog.witnesses.clone());
        w.spawn(tlog.clone(), stopping.clone());
        w
    });
    let mut acme = None;
    if let Some((listener, tls)) = http {
        if let Some(PublicTls::Acme { acme: a, .. }) = &tls {
            acme = Some(a.clone());
        }
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        bound.push(format!("{scheme}={local}"));
        crate::say!("beamd edge: listening {scheme} on {local}");
        tokio::spawn(crate::edge::accept_public_http(listener, tls, ctx.clone()));
        tokio::spawn(crate::edge::recheck_domains(ctx.clone()));
        let every = cfg.health_interval.max(Duration::from_secs(1));
        tokio::spawn(crate::edge::probe_services(ctx.clone(), every));
        tokio::spawn(crate::edge::record_gateway_errors(ctx.clone()));
    }
    if let Some(listener) = api {
        let local = listener.local_addr()?;
        bound.push(format!("api={local}"));
        crate::say!("beamd edge: listening api on {local}");
        let accounts = account_settings(&cfg, &dir, local)?;
        let state = api_state(
            &cfg,
            &ctx,
            &bound,
            fingerprint.clone(),
            accounts,
            tlog,
            metrics,
        );
        let state = ApiState {
            acme,
            witnesses,
            ..state
        };
        tokio::spawn(crate::api::serve(
            listener,
            Arc::new(state),
            stopping.clone(),
            ctx.settings.header_timeout.get(),
        ));
    }
    let join = NodeCommand::Join {
        version: env!("CARGO_PKG_VERSION").to_string(),
        public_addrs: bound,
        transports: cfg
            .agent_listeners
            .iter()
            .map(|(t, _)| t.as_str().to_string())
            .collect(),
    };
    core.node_command(&node, join).await?;
    crate::say!(
        "beamd edge: certificate fingerprint {fingerprint}{}",
        if created { " (new)" } else { "" }
    );
    if let Some(boot) = bootstrap(
        &core,
        cfg.admin_token.as_ref().map(|t| t.0.clone()),
        &cfg.tunnel_base,
    )
    .await?
    {
        if boot.from_env {
            crate::say!("beamd edge: admin token taken from --admin-token (or BEAMD_ADMIN_TOKEN)");
        } else {
            crate::say!(
                "beamd edge: admin token {} (shown once; keep it)",
                boot.token
            );
        }
    }
    if let Some(path) = &cfg.tokens_file {
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

    let mut heartbeat = tokio::time::interval(cfg.heartbeat.max(Duration::from_secs(1)));
    heartbeat.tick().await;
    let grace = cfg.grace;
    let mut sweep = tokio::time::interval((grace / 4).max(Duration::from_secs(1)));
    // A node three heartbeats late is taken for dead (kill -9, cut off).
    let silent_after = cfg.heartbeat.max(Duration::from_secs(1)) * 3;
    tokio::pin!(stop);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason,
            () = log_stopped(&mut committed) => log_failed(&opened),
            Some(new) = next_reload(&mut reloads) => reload(&core, &ctx, &new).await,
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

/// The next configuration a reload accepted; never, without a config file.
async fn next_reload(
    reloads: &mut Option<tokio::sync::mpsc::UnboundedReceiver<NodeSettings>>,
) -> Option<NodeSettings> {
    match reloads {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Puts in force what a reload may change while the edge runs (the
/// command line checked that nothing else changed): each is read on every
/// use, so it holds from the next connection, request or capture on. The
/// tokens file is imported again.
async fn reload(core: &Core, ctx: &EdgeContext, new: &NodeSettings) {
    let s = &ctx.settings;
    s.upstream_timeout
        .set(new.upstream_timeout.max(Duration::from_secs(1)));
    s.header_timeout.set(new.header_timeout);
    s.trusted_proxies.set(new.trusted_proxies.clone());
    s.egress.set_allow(new.egress_allow.clone());
    s.connections.set_max(new.max_tenant_connections);
    s.disk.set_min_free(new.min_free_disk_bytes);
    if let Some(full) = &s.full_capture {
        full.masked.set(new.inspect.masked().into());
    }
    let tokens = match &new.tokens_file {
        Some(path) => match super::tokens_file::import(core, path).await {
            Ok(n) => format!("; {n} new token(s) from {}", path.display()),
            Err(e) => format!("; the tokens file was not imported: {e:#}"),
        },
        None => String::new(),
    };
    crate::say!("beamd edge: reloaded the configuration{tokens}");
}
