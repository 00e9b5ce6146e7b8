//! How an agent trusts the edge: a pinned fingerprint, a CA file, the
//! system roots, or (said loudly) nothing.

use anyhow::{bail, Result};
use beamd_transports::tls::Trust;

use super::settings::AgentConn;

pub(super) fn trust(args: &AgentConn, fingerprint: Option<&str>) -> Result<Trust> {
    if args.insecure {
        eprintln!("beamd tcp: WARNING: --insecure: the edge is not verified; anyone in the path can impersonate it");
        return Ok(Trust::Insecure);
    }
    if let Some(fp) = fingerprint {
        let clean = fp.replace(':', "");
        if clean.len() != 64 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--fingerprint must be 64 hex digits (colons allowed)");
        }
        return Ok(Trust::Fingerprint(clean));
    }
    if let Some(ca) = &args.ca {
        return Ok(Trust::ca_file(ca)?);
    }
    Ok(Trust::System)
}
