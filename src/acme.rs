//! Certificates for the public HTTPS port from an ACME CA (RFC 8555, the
//! `instant-acme` client): for a host the edge routes, at the first TLS
//! handshake that names it (never for a name it does not route), through
//! TLS-ALPN-01 on the HTTPS port itself. The account key and each host's
//! certificate and key are kept in `<data dir>/acme` (0600); a certificate
//! with a third of its lifetime left is renewed in the background while it
//! goes on being served; a failed order is retried after a backoff that
//! doubles up to an hour, and reported (log, metric).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::metric_catalog;

/// New orders one tenant's hosts may cause per hour: the CA's limits are
/// shared by every tenant of the edge.
pub const ORDERS_PER_TENANT_HOUR: usize = 20;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How the edge talks to its CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// The account's contact mailbox.
    pub email: Option<String>,
    /// A PEM file of CA certificates to trust for the directory's own
    /// HTTPS (a test CA such as pebble); none: the platform's roots.
    pub ca: Option<PathBuf>,
}

/// A host's certificate, when it should be renewed, and when it ends.
struct Issued {
    key: Arc<CertifiedKey>,
    renew_at: SystemTime,
    not_after: SystemTime,
}

/// Why a host has no certificate yet, and when it may be ordered again.
struct Failed {
    why: String,
    retry_at: SystemTime,
    backoff: Duration,
}

/// Serves one certificate, whatever the name asked for.
#[derive(Debug)]
struct One(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for One {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A server configuration serving `key`, speaking `alpn`.
pub fn config_for(
    key: Arc<CertifiedKey>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(key)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What the client holds and what failed, for `/status`.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeReport {
    /// The CA's directory.
    pub directory: String,
    /// Certificates held, by host.
    pub certificates: Vec<HeldCertificate>,
    /// Hosts whose last order failed, and when they are tried again.
    pub failing: Vec<FailingOrder>,
}

/// A certificate held for a host.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldCertificate {
    /// The host.
    pub host: String,
    /// When it is renewed (ms since the epoch).
    pub renew_at: u64,
    /// When it ends (ms since the epoch).
    pub not_after: u64,
}

/// A host whose last certificate order failed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingOrder {
    /// The host.
    pub host: String,
    /// What went wrong.
    pub error: String,
    /// When it may be ordered again (ms since the epoch).
    pub retry_at: u64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The edge's ACME client and the certificates it holds.
pub struct Acme {
    settings: AcmeSettings,
    dir: PathBuf,
    account: tokio::sync::OnceCell<Account>,
    issued: Mutex<HashMap<String, Issued>>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    failed: Mutex<HashMap<String, Failed>>,
    /// One order at a time per host.
    ordering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each tenant's recent orders began.
    per_tenant: Mutex<HashMap<String, Vec<SystemTime>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes `bytes` to `path` readable by the owner only, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A certificate chain and key in PEM, as served, with when to renew it:
/// a third of its lifetime before it ends.
fn certified(pem: &str) -> Result<Issued, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let first = chain.first().ok_or("no certificate")?;
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| format!("certificate: {e}"))?;
    let validity = parsed.validity();
    let from = validity.not_before.timestamp().max(0) as u64;
    let until = validity.not_after.timestamp().max(0) as u64;
    let renew = until.saturating_sub(until.saturating_sub(from) / 3);
    // `CertifiedKey::new`, not `from_der`: the latter parses the leaf
    // again with webpki, which refuses extensions a CA may mark critical.
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key: {e}"))?;
    let key = CertifiedKey::new(chain, signer);
    Ok(Issued {
        key: Arc::new(key),
        renew_at: UNIX_EPOCH + Duration::from_secs(renew),
        not_after: UNIX_EPOCH + Duration::from_secs(until),
    })
}

/// The TLS-ALPN-01 answer for `host`: a self-signed certificate for it
/// carrying the key authorization's digest.
fn challenge_key(host: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

impl Acme {
    /// The client for `settings`, with the certificates kept in `data_dir`.
    pub fn new(settings: AcmeSettings, data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("acme");
        std::fs::create_dir_all(&dir)?;
        let mut issued = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(host) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
            else {
                continue;
            };
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|p| certified(&p))
            {
                Ok(cert) => {
                    issued.insert(host.to_string(), cert);
                }
                Err(e) => tracing::warn!(host, "ignoring the stored certificate: {e}"),
            }
        }
        Ok(Self {
            settings,
            dir,
            account: tokio::sync::OnceCell::new(),
            issued: Mutex::new(issued),
            challenges: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            ordering: Mutex::new(HashMap::new()),
            per_tenant: Mutex::new(HashMap::new()),
        })
    }

    /// What it holds and what failed.
    pub fn report(&self) -> AcmeReport {
        let mut certificates: Vec<HeldCertificate> = (lock(&self.issued).iter())
            .map(|(host, c)| HeldCertificate {
                host: host.clone(),
                renew_at: ms(c.renew_at),
                not_after: ms(c.not_after),
            })
            .collect();
        certificates.sort_by(|a, b| a.host.cmp(&b.host));
        let mut failing: Vec<FailingOrder> = (lock(&self.failed).iter())
            .map(|(host, f)| FailingOrder {
                host: host.clone(),
                error: f.why.clone(),
                retry_at: ms(f.retry_at),
            })
            .collect();
        failing.sort_by(|a, b| a.host.cmp(&b.host));
        AcmeReport {
            directory: self.settings.directory.clone(),
            certificates,
            failing,
        }
    }

    /// The TLS-ALPN-01 answer for `host`, while an order for it waits.
    pub fn challenge(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.challenges).get(host).cloned()
    }

    /// The certificate held for `host` while it is valid (renewing it in
    /// the background when due).
    pub fn held(self: &Arc<Self>, host: &str) -> Option<Arc<CertifiedKey>> {
        let now = SystemTime::now();
        let (key, due) = {
            let issued = lock(&self.issued);
            let cert = issued.get(host).filter(|c| now < c.not_after)?;
            (cert.key.clone(), now >= cert.renew_at)
        };
        if due {
            let (me, host) = (self.clone(), host.to_string());
            tokio::spawn(async move {
                let _ = me.order(&host, None).await;
            });
        }
        Some(key)
    }

    /// Renews, every `every`, the certificates due, whether or not a
    /// handshake asks for them meanwhile; until the edge stops.
    pub async fn renew_due(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = SystemTime::now();
            let due: Vec<String> = (lock(&self.issued).iter())
                .filter(|(_, c)| now >= c.renew_at)
                .map(|(h, _)| h.clone())
                .collect();
            for host in due {
                let _ = self.order(&host, None).await;
            }
        }
    }

    /// The certificate for `host`, a host of `tenant` that the caller
    /// routes: held, or ordered now, within the tenant's orders per hour (a
    /// host whose last order failed waits out its backoff).
    pub async fn certificate(
        self: &Arc<Self>,
        host: &str,
        tenant: &str,
    ) -> Result<Arc<CertifiedKey>, String> {
        if let Some(key) = self.held(host) {
            return Ok(key);
        }
        self.order(host, Some(tenant)).await
    }

    /// Counts an order against `tenant`'s orders of the last hour, if it
    /// has any left.
    fn spend(&self, tenant: &str) -> Result<(), String> {
        let now = SystemTime::now();
        let mut per = lock(&self.per_tenant);
        let recent = per.entry(tenant.to_string()).or_default();
        recent.retain(|t| now.duration_since(*t).unwrap_or_default() < Duration::from_secs(3600));
        if recent.len() >= ORDERS_PER_TENANT_HOUR {
            return Err(format!(
                "tenant {tenant} ordered {ORDERS_PER_TENANT_HOUR} certificates in the last hour"
            ));
        }
        recent.push(now);
        Ok(())
    }

    /// Orders a certificate for `host` unless one is fresh (one order per
    /// host at a time), and keeps it; a first order counts against its
    /// tenant's orders per hour.
    async fn order(
        self: &Arc<Self>,
        host: &str,
        tenant: Option<&str>,
    ) -> Result<Arc<CertifiedKey>, String> {
        let turn = lock(&self.ordering)
            .entry(host.to_string())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        if let Some(cert) = lock(&self.issued).get(host) {
            if SystemTime::now() < cert.renew_at {
                return Ok(cert.key.clone());
            }
        }
        if let Some(f) = lock(&self.failed).get(host) {
            if SystemTime::now() < f.retry_at {
                return Err(format!("the last order failed ({}); retrying later", f.why));
            }
        }
        if let Some(tenant) = tenant {
            self.spend(tenant)?;
        }
        match self.issue(host).await {
            Ok(pem) => {
                let cert = certified(&pem)?;
                let key = cert.key.clone();
                write_private(&self.dir.join(format!("{host}.pem")), pem.as_bytes())
                    .map_err(|e| format!("cannot keep the certificate: {e}"))?;
                lock(&self.issued).insert(host.to_string(), cert);
                lock(&self.failed).remove(host);
                metrics::counter!(metric_catalog::ACME_ORDERS.name, "result" => "issued")
                    .increment(1);
                tracing::info!(host, "certificate issued");
                Ok(key)
            }
            Err(why) => {
                let mut failed = lock(&self.failed);
                let backoff = failed
                    .get(host)
                    .map(|f| (f.backoff * 2).min(Duration::from_secs(3600)))
                    .unwrap_or(Duration::from_secs(10));
                failed.insert(
                    host.to_string(),
                    Failed {
                        why: why.clone(),
                        retry_at: SystemTime::now() + backoff,
                        backoff,
                    },
                );
                metrics::counter!(metric_catalog::ACME_ORDERS.name, "result" => "failed")
                    .increment(1);
                tracing::warn!(
                    host,
                    "certificate order failed, retrying in {backoff:?}: {why}"
                );
                Err(why)
            }
        }
    }

    /// The account: kept in the data dir, or created at the first order.
    async fn account(&self) -> Result<&Account, String> {
        self.account
            .get_or_try_init(|| async {
                let builder = match &self.settings.ca {
                    Some(ca) => Account::builder_with_root(ca),
                    None => Account::builder(),
                }
                .map_err(|e| format!("ACME client: {e}"))?;
                let path = self.dir.join("account.json");
                if let Ok(stored) = std::fs::read(&path) {
                    let credentials: AccountCredentials = serde_json::from_slice(&stored)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    return builder
                        .from_credentials(credentials)
                        .await
                        .map_err(|e| format!("ACME account: {e}"));
                }
                let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder
                    .create(&new, self.settings.directory.clone(), None)
                    .await
                    .map_err(|e| format!("ACME account: {e}"))?;
                let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
                write_private(&path, &json).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(account)
            })
            .await
    }

    /// One order for `host` through TLS-ALPN-01: the chain and key, in PEM.
    async fn issue(&self, host: &str) -> Result<String, String> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let mut answered = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
                if authz.status == AuthorizationStatus::Valid {
                    continue;
                }
                let mut challenge = authz
                    .challenge(ChallengeType::TlsAlpn01)
                    .ok_or("the CA offers no tls-alpn-01 challenge")?;
                let digest = challenge.key_authorization().digest();
                let key = challenge_key(host, digest.as_ref())?;
                lock(&self.challenges).insert(host.to_string(), Arc::new(key));
                answered.push(host.to_string());
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge: {e}"))?;
            }
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(60));
        let status = order.poll_ready(&retries).await;
        for h in answered {
            lock(&self.challenges).remove(&h);
        }
        match status.map_err(|e| format!("order: {e}"))? {
            OrderStatus::Ready => {}
            other => return Err(format!("the order is {other:?}")),
        }
        let key = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok(format!("{key}{chain}"))
    }
}
