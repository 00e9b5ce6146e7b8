//! The flags of `beamd edge`, and the node settings they make.

use std::path::PathBuf;
use std::time::Duration;

use beamd_events::vocabulary::TransportKind;
use beamd_events::Durability;
use clap::ValueEnum;

use crate::edge::H2Limits;
use crate::inspector::{InspectSettings, DEFAULT_BODY_LIMIT};
use crate::node::{CertFiles, NodeSettings};
use crate::tlog::{TlogSettings, WitnessTarget};

/// A transport on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// QUIC over UDP (TLS 1.3 always).
    Quic,
    /// WebSocket over TCP.
    Ws,
    /// Plain TCP.
    Tcp,
}

impl From<TransportArg> for TransportKind {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Quic => TransportKind::Quic,
            TransportArg::Ws => TransportKind::Ws,
            TransportArg::Tcp => TransportKind::Tcp,
        }
    }
}

/// An inclusive port range, `FROM-TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad port range {s:?}: expected FROM-TO, e.g. 20000-20999");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a == 0 || a > b {
            return Err(bad());
        }
        Ok(PortRange(a, b))
    }
}

/// Options of `beamd edge`. Each is also a key of the `--config` file: the
/// long flag with `_` for `-`.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Read these settings from a TOML file: each key is a flag below with
    /// `_` for `-` (`tcp_ports = "20000-20999"`, `transport = ["quic"]`,
    /// `no_signup = true`); a flag given here wins over the file. SIGHUP
    /// reads the file again (see `beamd edge --config` in the README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (flags, file, defaults) as a
    /// config file, secrets masked, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// The admin token of the default tenant, tok_<id>.<secret> (else one is
    /// made and shown once on first start). In the file: admin_token,
    /// admin_token_file or admin_token_env.
    #[arg(
        long,
        env = "BEAMD_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// The data directory (created if missing).
    #[arg(long, default_value = crate::data_dir::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Transports to serve agents on (repeat for several).
    #[arg(long = "transport", value_enum, default_values_t = [TransportArg::Quic])]
    pub transports: Vec<TransportArg>,
    /// Where each transport listens, in the order of --transport (default 0.0.0.0:7000, ws 0.0.0.0:7080).
    #[arg(long = "listen")]
    pub listen: Vec<std::net::SocketAddr>,
    /// The address public TCP ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    pub public_host: std::net::IpAddr,
    /// The host name shown in public addresses (default: the public host, or localhost for 0.0.0.0).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Public TCP ports are allocated from this range.
    #[arg(long, default_value = "20000-20999")]
    pub tcp_ports: PortRange,
    /// Public UDP ports are allocated from this range (a number may be one
    /// tunnel's TCP port and another's UDP port).
    #[arg(long, default_value = "20000-20999")]
    pub udp_ports: PortRange,
    /// Serve public HTTP for HTTP tunnels here (e.g. 0.0.0.0:8080); none by default.
    #[arg(long)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Serve public HTTPS instead of HTTP on --http-listen with this certificate chain (PEM, leaf first).
    #[arg(long, requires_all = ["tls_key", "http_listen"])]
    pub tls_cert: Option<PathBuf>,
    /// The PKCS#8 private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve public HTTPS on --http-listen with certificates from this ACME
    /// CA's directory (e.g. https://acme-v02.api.letsencrypt.org/directory):
    /// each host the edge routes gets its own at the first TLS handshake
    /// that names it, through TLS-ALPN-01 on that port (which must be the
    /// host's port 443 for a public CA). --tls-cert, if given, serves every
    /// other name.
    #[arg(long, value_name = "URL", requires = "http_listen")]
    pub acme_directory: Option<String>,
    /// The ACME account's contact mailbox.
    #[arg(long, value_name = "MAILBOX", requires = "acme_directory")]
    pub acme_email: Option<String>,
    /// Trust this CA (PEM) for the ACME directory's own HTTPS (a test CA such as pebble's).
    #[arg(long, value_name = "FILE", requires = "acme_directory")]
    pub acme_ca: Option<PathBuf>,
    /// Seal sign-in cookies (tunnels behind OpenID Connect) with the 32
    /// bytes in FILE (readable by its owner only) instead of the data dir's
    /// own sign-in.key: give every edge of a cluster the same file, so a
    /// session or a sign-in started at one edge is good at the others.
    /// Make one with `head -c 32 /dev/urandom > FILE; chmod 600 FILE`.
    #[arg(long, value_name = "FILE")]
    pub sign_in_key_file: Option<PathBuf>,
    /// Serve the REST API (and /metrics) here. Keep it on a private address: it is the control plane.
    #[arg(long, default_value = "127.0.0.1:4040")]
    pub api_listen: std::net::SocketAddr,
    /// Do not serve the REST API.
    #[arg(long)]
    pub no_api: bool,
    /// Refuse sign-ups (POST /api/v1/auth/register answers 403).
    #[arg(long)]
    pub no_signup: bool,
    /// The plan a sign-up's tenant gets: KEY=VALUE,… with name, tunnels
    /// (live at once), domains (custom domains), pending-domains (waiting
    /// for their TXT record at once), bandwidth-gib (per calendar month) or
    /// bandwidth-bytes; a number or `unlimited`. Keys left out keep the
    /// default's values.
    #[arg(long, default_value = crate::domain::tenant::DEFAULT_SIGNUP_PLAN,
        value_parser = |s: &str| crate::domain::tenant::parse_plan(s).map_err(|e| e.to_string()))]
    pub signup_plan: beamd_events::vocabulary::Plan,
    /// The SMTP relay (HOST-IP:PORT, plain SMTP) that password-reset mail goes through; without it mail is off.
    #[arg(long)]
    pub smtp_relay: Option<std::net::SocketAddr>,
    /// The sender of password-reset mail.
    #[arg(long, default_value = "beamd <noreply@localhost>")]
    pub mail_from: String,
    /// The public base URL of this control plane, for links in mail (default: http://<api listen address>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Record no requests' metadata (RequestsCaptured): every tunnel is as `--inspect off`.
    #[arg(long)]
    pub no_capture: bool,
    /// Free space (MiB) kept on the data dir's disk: below it, API writes get
    /// 507, new agent sessions and request captures are refused, and traffic
    /// is still recorded. 0 turns the check off.
    #[arg(long, default_value_t = 64)]
    pub min_free_disk_mib: u64,
    /// Public connections one tenant's tunnels may hold open at once (TCP
    /// connections, and HTTP client connections with a stream to a tunnel);
    /// past it a TCP connection is closed and an HTTP request gets 503.
    #[arg(long, default_value_t = crate::edge::DEFAULT_TENANT_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tenant_connections: u64,
    /// File descriptors kept free: a connection accepted with fewer left is
    /// turned away (HTTP and the API: 503; others: closed). The edge raises its
    /// soft open-file limit to the hard one at start. 0 turns the check off.
    #[arg(long, default_value_t = beamd_transports::DEFAULT_FD_RESERVE)]
    pub fd_reserve: u64,
    /// Seconds the service behind an HTTP tunnel has to start answering before the client gets 504.
    #[arg(long, default_value_t = 30)]
    pub upstream_timeout_secs: u64,
    /// Seconds a public HTTP client has to send its headers or keep a connection idle (0 = no limit).
    #[arg(long, default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// The DNS server (IP:PORT, UDP) asked for custom-domain TXT records (default: the system's).
    #[arg(long)]
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Let the edge connect to this network on a tenant's behalf (gateway
    /// upstream URLs and their health checks), repeatable. Without it the
    /// edge connects only to public addresses: loopback, private, link-local,
    /// unique-local, CGNAT, multicast and reserved ones are refused, and so
    /// are the edge's own listeners, allowed or not. Example: 10.0.0.0/8.
    #[arg(long = "egress-allow", value_name = "CIDR")]
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Public HTTP clients in this network (a load balancer in front of the
    /// edge) may set X-Forwarded-For, X-Real-IP and Forwarded, repeatable;
    /// from anyone else those headers are dropped and set from the TCP peer.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds between checks of custom domains still waiting for their TXT record.
    #[arg(long, default_value_t = 30)]
    pub domain_recheck_secs: u64,
    /// How long a custom domain may wait for its TXT record before its claim
    /// lapses and anyone may add the host (e.g. 72h, 30m, 90s, 3d).
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub domain_claim_ttl: std::time::Duration,
    /// Seconds between health probes of gateway services with a healthCheckPath.
    #[arg(long, default_value_t = 10)]
    pub health_interval_secs: u64,
    /// Serve TCP and WebSocket agents over TLS as well (QUIC always is).
    #[arg(long)]
    pub tls: bool,
    /// A certificate chain (PEM, leaf first) to use instead of the self-signed one.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The PKCS#8 private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Import agent tokens from this file into the default tenant at start (see README).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// An offline tunnel keeps its port for its agent this long, then is released.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u64,
    /// Base host of the default tenant's HTTP tunnels.
    #[arg(long, default_value = "localhost")]
    pub tunnel_base: String,
    /// When appends are flushed: always, interval:<ms>, or off (benchmarks only: acknowledged events can be lost).
    #[arg(long, default_value = "always")]
    pub durability: Durability,
    /// Keep the event log on NATS JetStream (`nats://HOST:PORT[,HOST:PORT…]`,
    /// one stream replica per server up to 3) instead of the data dir's sled,
    /// so that several edges share one log; the data dir keeps this node's
    /// id, snapshots and inspector index.
    #[arg(long, value_name = "nats://HOST:PORT[,…]")]
    pub log: Option<String>,
    /// Seconds between the node's heartbeat events.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// Snapshot projections and entities after this many new events (0 = only on shutdown).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Stop (after a snapshot) a tenant, key or tunnel actor that got no message for this long.
    #[arg(long, default_value_t = 300)]
    pub actor_idle_secs: u64,
    /// Bytes a tunnel carries are recorded as one event per window of this length.
    #[arg(long, default_value_t = 1_000)]
    pub traffic_window_ms: u64,
    /// Recent captured requests kept in memory per tenant (older ones stay in the history index).
    #[arg(long, default_value_t = crate::projections::DEFAULT_RECENT)]
    pub inspector_recent: usize,
    /// The transparency log.
    #[command(flatten)]
    pub tlog: TlogArgs,
    /// Full capture.
    #[command(flatten)]
    pub inspect: InspectArgs,
    /// HTTP/2 limits of the public ingress.
    #[command(flatten)]
    pub h2: H2Args,
}

/// `beamd edge` flags of the transparency log.
#[derive(Debug, Clone, clap::Args)]
pub struct TlogArgs {
    /// The log's name in its checkpoints and signing key (a schema-less URL
    /// such as example.com/beamd), set when the key is created on first start
    /// [default: beamd/<node id>].
    #[arg(long, value_name = "NAME")]
    pub log_origin: Option<String>,
    /// Sign a checkpoint once this many events arrived since the last one.
    #[arg(long, default_value_t = 1_000, value_name = "EVENTS")]
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often while events arrive (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub checkpoint_interval: Duration,
    /// Submit every checkpoint to this witness (C2SP tlog-witness, e.g. a
    /// `beamd witness`): URL=VKEY, its http:// URL and its cosignature
    /// verifier key; repeat for several. Cosignatures are served with the
    /// checkpoint.
    #[arg(long = "witness", value_name = "URL=VKEY", value_parser = parse_witness)]
    pub witnesses: Vec<WitnessTarget>,
}

fn parse_witness(s: &str) -> std::result::Result<WitnessTarget, String> {
    WitnessTarget::parse(s).map_err(|e| format!("{e:#}"))
}

impl From<TlogArgs> for TlogSettings {
    fn from(a: TlogArgs) -> Self {
        TlogSettings {
            log_origin: a.log_origin,
            checkpoint_every: a.checkpoint_every,
            checkpoint_interval: a.checkpoint_interval,
            witnesses: a.witnesses,
        }
    }
}

/// `beamd edge` flags of full capture.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Body bytes kept per request and per response with full capture.
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub body_limit: usize,
    /// The body store's size cap, in MiB; the oldest details go first.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub body_store_mib: u64,
    /// How long captured details are kept (e.g. 24h, 30m).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub body_ttl: Duration,
    /// A header whose value is masked before it is stored, besides
    /// Authorization, Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key
    /// (repeatable).
    #[arg(long = "mask-header", value_name = "NAME")]
    pub mask_headers: Vec<String>,
}

impl From<InspectArgs> for InspectSettings {
    fn from(a: InspectArgs) -> Self {
        InspectSettings {
            body_limit: a.body_limit,
            body_store_mib: a.body_store_mib,
            body_ttl: a.body_ttl,
            mask_headers: a.mask_headers,
        }
    }
}

/// The HTTP/2 limits of the public ingress, as `beamd edge` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct H2Args {
    /// Streams one HTTP/2 client connection may have open at once (further
    /// ones are refused with REFUSED_STREAM until some end).
    #[arg(long = "h2-max-streams", default_value_t = crate::edge::MAX_CONCURRENT_STREAMS,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// The largest header list (bytes, decoded) an HTTP/2 client may send;
    /// a request past it is refused.
    #[arg(long = "h2-max-header-list", default_value_t = crate::edge::MAX_HEADER_LIST,
        value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_header_list: u32,
    /// Streams an HTTP/2 client may reset before the edge took them up, at
    /// once (the rapid-reset guard): past it the connection ends with GOAWAY
    /// ENHANCE_YOUR_CALM.
    #[arg(long = "h2-max-pending-resets", default_value_t = crate::edge::MAX_PENDING_RESETS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_pending_resets: usize,
}

impl From<H2Args> for H2Limits {
    fn from(a: H2Args) -> Self {
        H2Limits {
            max_streams: a.max_streams,
            max_header_list: a.max_header_list,
            max_pending_resets: a.max_pending_resets,
        }
    }
}

/// Both files of a certificate, when clap's `requires` made sure both or neither came.
fn cert_files(cert: Option<PathBuf>, key: Option<PathBuf>) -> Option<CertFiles> {
    Some(CertFiles {
        cert: cert?,
        key: key?,
    })
}

impl TryFrom<EdgeArgs> for NodeSettings {
    type Error = anyhow::Error;

    fn try_from(a: EdgeArgs) -> anyhow::Result<Self> {
        if a.listen.len() > a.transports.len() {
            anyhow::bail!(
                "{} --listen addresses for {} --transport values",
                a.listen.len(),
                a.transports.len()
            );
        }
        let agent_listeners = a
            .transports
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let kind = TransportKind::from(t);
                let addr = a.listen.get(i).copied();
                (
                    kind,
                    addr.unwrap_or_else(|| crate::protocol::default_agent_listen(kind)),
                )
            })
            .collect();
        Ok(NodeSettings {
            data_dir: a.data_dir,
            agent_listeners,
            agent_tls: a.tls,
            agent_cert: cert_files(a.cert, a.key),
            public_host: a.public_host,
            advertise: a.advertise,
            tcp_ports: (a.tcp_ports.0, a.tcp_ports.1),
            udp_ports: (a.udp_ports.0, a.udp_ports.1),
            http_listen: a.http_listen,
            https_cert: cert_files(a.tls_cert, a.tls_key),
            acme: a.acme_directory.map(|directory| crate::acme::AcmeSettings {
                directory,
                email: a.acme_email,
                ca: a.acme_ca,
            }),
            sign_in_key_file: a.sign_in_key_file,
            api_listen: (!a.no_api).then_some(a.api_listen),
            signup: !a.no_signup,
            signup_plan: a.signup_plan,
            smtp_relay: a.smtp_relay,
            mail_from: a.mail_from,
            public_url: a.public_url,
            capture: !a.no_capture,
            min_free_disk_bytes: a.min_free_disk_mib << 20,
            max_tenant_connections: a.max_tenant_connections,
            fd_reserve: a.fd_reserve,
            upstream_timeout: Duration::from_secs(a.upstream_timeout_secs),
            header_timeout: (a.header_timeout_secs > 0)
                .then(|| Duration::from_secs(a.header_timeout_secs)),
            dns_resolver: a.dns_resolver,
            egress_allow: a.egress_allow,
            trusted_proxies: a.trusted_proxies,
            domain_recheck: Duration::from_secs(a.domain_recheck_secs),
            domain_claim_ttl: a.domain_claim_ttl,
            health_interval: Duration::from_secs(a.health_interval_secs),
            tokens_file: a.tokens,
            admin_token: a.admin_token.map(crate::node::AdminToken),
            grace: Duration::from_secs(a.grace_secs),
            tunnel_base: a.tunnel_base,
            durability: a.durability,
            log: a.log,
            heartbeat: Duration::from_secs(a.heartbeat_secs),
            snapshot_every: a.snapshot_every,
            actor_idle: Duration::from_secs(a.actor_idle_secs),
            traffic_window: Duration::from_millis(a.traffic_window_ms),
            inspector_recent: a.inspector_recent,
            tlog: a.tlog.into(),
            inspect: a.inspect.into(),
            h2: a.h2.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn edge(args: &[&str]) -> anyhow::Result<NodeSettings> {
        let cli = Cli::try_parse_from(["beamd", "edge"].iter().chain(args))?;
        match cli.command {
            Command::Edge(args) => NodeSettings::try_from(*args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_flags_defaults_are_the_settings_defaults() {
        assert_eq!(edge(&[]).unwrap(), NodeSettings::default());
    }

    #[test]
    fn listen_addresses_pair_with_transports_in_order() {
        let s = edge(&[
            "--transport",
            "ws",
            "--transport",
            "tcp",
            "--listen",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(
            s.agent_listeners,
            vec![
                (TransportKind::Ws, "127.0.0.1:9".parse().unwrap()),
                (TransportKind::Tcp, "0.0.0.0:7000".parse().unwrap()),
            ]
        );
        let err = edge(&["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 --listen addresses for 1 --transport values"
        );
        let s = edge(&["--no-api", "--header-timeout-secs", "0"]).unwrap();
        assert_eq!((s.api_listen, s.header_timeout), (None, None));
    }

    /// `beamd edge ARGS` with `--config` pointing at a file holding `text`.
    fn with_file(text: &str, args: &[&str]) -> Result<NodeSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("admin.token"), "tok_adm.s3cret\n").unwrap();
        let mut argv: Vec<std::ffi::OsString> = vec!["beamd".into(), "edge".into()];
        argv.extend(args.iter().map(Into::into));
        argv.push("--config".into());
        argv.push(path.into());
        let parsed = crate::cli::parse_from(argv).map_err(|e| {
            let text = e.to_string();
            text[text.find(".toml:").map_or(0, |i| i + 6)..].to_string()
        })?;
        match parsed.cli.command {
            Command::Edge(args) => NodeSettings::try_from(*args).map_err(|e| e.to_string()),
            other => panic!("parsed as {other:?}"),
        }
    }

    const FILE: &str = r#"
data_dir = "/srv/beamd"
transport = ["ws", "tcp"]
listen = ["127.0.0.1:9", "127.0.0.1:10"]
tcp_ports = "30000-30099"
no_signup = true
tls = false
max_tenant_connections = 50
domain_claim_ttl = "3d"
egress_allow = ["10.0.0.0/8"]
mask_header = ["X-Secret"]
h2_max_streams = 16
checkpoint_interval = "500ms"
admin_token_file = "admin.token"
"#;

    #[test]
    fn a_file_is_the_same_as_its_flags() {
        let flags = edge(&[
            "--data-dir",
            "/srv/beamd",
            "--transport",
            "ws",
            "--transport",
            "tcp",
            "--listen",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:10",
            "--tcp-ports",
            "30000-30099",
            "--no-signup",
            "--max-tenant-connections",
            "50",
            "--domain-claim-ttl",
            "3d",
            "--egress-allow",
            "10.0.0.0/8",
            "--mask-header",
            "X-Secret",
            "--h2-max-streams",
            "16",
            "--checkpoint-interval",
            "500ms",
            "--admin-token",
            "tok_adm.s3cret",
        ])
        .unwrap();
        assert_eq!(with_file(FILE, &[]).unwrap(), flags);
        assert_ne!(flags, NodeSettings::default());
    }

    #[test]
    fn flags_win_over_the_file() {
        let args = [
            "--tcp-ports",
            "40000-40009",
            "--transport",
            "quic",
            "--listen",
            "127.0.0.1:11",
        ];
        let s = with_file(FILE, &args).unwrap();
        assert_eq!(s.tcp_ports, (40000, 40009));
        assert_eq!(s.agent_listeners.len(), 1);
        // A list flag on the command line replaces the file's list.
        assert_eq!(s.agent_listeners[0].0, TransportKind::Quic);
    }

    #[test]
    fn file_errors_name_line_and_column() {
        let cases = [
            ("tcp_prots = \"1-2\"\n", "1:1: unknown key `tcp_prots`"),
            ("\ntcp_ports = \"9-1\"\n", "2:13: tcp_ports: invalid value '9-1' for '--tcp-ports <TCP_PORTS>': bad port range"),
            ("transport = [\"quic\", \"udp\"]\n", "1:13: transport: invalid value 'udp'"),
            ("no_signup = \"yes\"\n", "1:13: no_signup is true or false"),
            ("data_dir = [\"a\", \"b\"]\n", "1:12: data_dir takes one value, not a list"),
            ("admin_token = \"x\"\nadmin_token_env = \"T\"\n", "2:19: give admin_token one way"),
            ("grace_secs = true\n", "1:14: grace_secs takes a string or a number, not boolean"),
            ("config = \"other.toml\"\n", "1:1: unknown key `config`"),
            ("tcp-ports = \"1-2\"\n", "1:1: unknown key `tcp-ports`: keys have _ where flags have -: tcp_ports"),
        ];
        for (text, wanted) in cases {
            let err = with_file(text, &[]).unwrap_err();
            assert!(err.starts_with(wanted), "{text:?}: {err}");
        }
    }
}
