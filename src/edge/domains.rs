//! Custom domains on the edge: an agent's `--domain HOST` is added to its
//! tenant if new and checked at once; domains still waiting for their TXT
//! record are checked again periodically and routed when verified; claims
//! pending past `--domain-claim-ttl` are expired on the same tick.

use std::sync::Arc;

use super::context::EdgeContext;
use super::error_frame::{error, from_core};
use crate::domain::{AddDomain, DomainCommand, DomainName, DomainStatus, Key};
use crate::protocol::ErrorFrame;

/// The tenant's domain for `host`, added if new, verified if its TXT record is there.
pub(super) async fn ensure(
    ctx: &EdgeContext,
    key: &Key,
    host: &str,
) -> Result<DomainName, ErrorFrame> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let known = ctx.core.queries().domain_of_host(&host);
    let lapsed =
        |d: &DomainName| d.claim_lapsed(ctx.core.now_ms(), ctx.settings.dns.claim_ttl_ms());
    let domain = match known {
        Some(d) if d.tenant != key.tenant && !lapsed(&d) => {
            return Err(error(
                "conflict",
                format!("{host} is registered by another tenant"),
            ))
        }
        Some(d) if d.tenant == key.tenant && !lapsed(&d) => d,
        _ => ctx
            .core
            .add_domain(
                &key.tenant,
                AddDomain {
                    host,
                    claim_ttl_ms: ctx.settings.dns.claim_ttl_ms(),
                },
            )
            .await
            .map_err(from_core)?,
    };
    if domain.status == DomainStatus::Verified {
        return Ok(domain);
    }
    ctx.settings
        .dns
        .verify(&ctx.core, &domain)
        .await
        .map_err(from_core)
}

/// What the agent is told about a domain that is not verified yet.
pub(super) fn waiting_notice(ctx: &EdgeContext, domain: &DomainName) -> String {
    format!(
        "custom domain {} is not verified yet ({}); publish TXT {} = \"{}\", the edge checks again every {}s",
        domain.host,
        domain.failure.as_deref().unwrap_or("not checked yet"),
        domain.txt_name(),
        domain.txt_token,
        ctx.settings.domain_recheck.as_secs().max(1),
    )
}

/// Checks waiting domains again every `domain_recheck` until the edge stops.
pub async fn recheck(ctx: Arc<EdgeContext>) {
    let shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(ctx.settings.domain_recheck);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (tunnel, waiting) in ctx.waiting_domains() {
            // A domain removed meanwhile is not looked up again.
            let current = ctx.core.queries().domain(&waiting.id);
            let Some(current) = current else { continue };
            match ctx.settings.dns.verify(&ctx.core, &current).await {
                Ok(d) if d.status == DomainStatus::Verified => {
                    ctx.domain_verified(&tunnel, &d);
                    crate::say!("beamd edge: custom domain {} verified", d.host);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(domain = %current.host, "domain check failed: {e}"),
            }
        }
        let ttl_ms = ctx.settings.dns.claim_ttl_ms();
        let lapsed = (ctx.core.queries()).lapsed_claims(ctx.core.now_ms(), ttl_ms);
        for id in lapsed {
            let expire = DomainCommand::ExpireClaim { ttl_ms };
            if let Err(e) = ctx.core.domain_command(&id, expire).await {
                tracing::warn!(domain = %id, "expiring a lapsed claim failed: {e}");
            }
        }
    }
}
