//! Custom-domain verification: a real DNS TXT lookup of
//! `_beamd-challenge.HOST`, against the system's resolver or one given with
//! `--dns-resolver` (tests point it at a server they run on 127.0.0.1).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::actors::{Core, CoreError};
use crate::domain::{DomainCommand, DomainName, DomainStatus};

/// How long one TXT lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks up TXT records for domain verification.
#[derive(Debug, Clone)]
pub struct DnsVerifier {
    /// The name server to ask (UDP); the system's when `None`.
    pub resolver: Option<SocketAddr>,
    /// How long a claim may wait for its TXT record (`--domain-claim-ttl`).
    pub claim_ttl: Duration,
}

impl Default for DnsVerifier {
    fn default() -> Self {
        Self {
            resolver: None,
            claim_ttl: Duration::from_millis(crate::domain::DEFAULT_CLAIM_TTL_MS),
        }
    }
}

impl DnsVerifier {
    fn builder(&self) -> Result<ResolverBuilder<TokioRuntimeProvider>, String> {
        match self.resolver {
            Some(addr) => {
                let mut server = NameServerConfig::udp(addr.ip());
                for c in &mut server.connections {
                    c.port = addr.port();
                }
                Ok(TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                ))
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("the system's DNS configuration is unusable: {e}")),
        }
    }

    /// A resolver for the addresses of tenant-given hosts (cached by the
    /// records' own time to live).
    pub fn ip_resolver(&self) -> Result<TokioResolver, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = LOOKUP_TIMEOUT;
        opts.attempts = 1;
        self.builder()?
            .with_options(opts)
            .build()
            .map_err(|e| e.to_string())
    }

    /// The TXT values at `name`, each record's strings joined; the lookup's
    /// error as text. No answer is cached: a record published a moment ago
    /// is seen on the next check.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.timeout = LOOKUP_TIMEOUT;
        opts.attempts = 1;
        let resolver = self
            .builder()?
            .with_options(opts)
            .build()
            .map_err(|e| e.to_string())?;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT * 2, resolver.txt_lookup(fqdn))
            .await
            .map_err(|_| format!("no answer within {:?}", LOOKUP_TIMEOUT * 2))?;
        match lookup {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The claim lifetime in ms, as commands carry it.
    pub fn claim_ttl_ms(&self) -> u64 {
        u64::try_from(self.claim_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Checks a pending domain's TXT record and records the outcome (a
    /// claim pending past its lifetime expires instead); a verified domain
    /// is returned as it is.
    pub async fn verify(&self, core: &Core, domain: &DomainName) -> Result<DomainName, CoreError> {
        if domain.status == DomainStatus::Verified {
            return Ok(domain.clone());
        }
        let found = self.txt(&domain.txt_name()).await;
        let cmd = DomainCommand::Verify {
            found,
            claim_ttl_ms: self.claim_ttl_ms(),
        };
        core.domain_command(&domain.id, cmd).await
    }
}
