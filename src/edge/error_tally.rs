//! Gateway failures counted on the hot path and recorded once per traffic
//! window: one `GatewayErrorsRecorded` per (route, kind) that failed in the
//! window, never an event per failed request.

use std::collections::BTreeMap;
use std::sync::Mutex;

use beamd_events::vocabulary::GatewayErrorsRecorded;

/// Which gateway request failed, and how.
pub struct Failure<'a> {
    /// The route's tenant.
    pub tenant: &'a str,
    /// The route.
    pub route: &'a str,
    /// `unreachable`, `timeout` or `server_error`.
    pub kind: &'static str,
    /// The status the caller got.
    pub status: u16,
    /// What happened.
    pub message: String,
}

/// Failures since the last window.
#[derive(Debug, Default)]
pub struct ErrorTally {
    pending: Mutex<BTreeMap<(String, &'static str), GatewayErrorsRecorded>>,
}

impl ErrorTally {
    /// Counts one failure.
    pub fn note(&self, f: Failure<'_>) {
        // Entries are replaced whole; a poisoned map is still consistent.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let e = pending
            .entry((f.route.to_string(), f.kind))
            .or_insert_with(|| GatewayErrorsRecorded {
                tenant: f.tenant.to_string(),
                route: f.route.to_string(),
                kind: f.kind.to_string(),
                count: 0,
                status: f.status,
                message: String::new(),
            });
        e.count += 1;
        e.status = f.status;
        e.message = f.message;
    }

    /// The failures tallied since the last call, one record per (route, kind).
    pub fn take(&self) -> Vec<GatewayErrorsRecorded> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *pending).into_values().collect()
    }
}
