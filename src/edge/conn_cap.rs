//! How many public connections each tenant's tunnels hold at once, and the
//! cap on it (`--max-tenant-connections`): one tenant's flood cannot take
//! every connection an edge can hold. A connection takes a slot when it
//! opens a stream to the agent and gives it back when that stream ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use beamd_transports::{count_refusal, ListenerKind, RefusalReason};

/// The open public connections per tenant, and the cap.
#[derive(Debug)]
pub struct TenantConnections {
    max: AtomicU64,
    open: Mutex<HashMap<String, u64>>,
}

/// One open public connection of a tenant; the slot frees on drop.
#[derive(Debug)]
pub struct TenantSlot {
    owner: Arc<TenantConnections>,
    tenant: String,
}

impl TenantConnections {
    /// A cap of `max` open connections per tenant.
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicU64::new(max),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Changes the cap (a reload); connections over a lowered cap stay open.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // Counts change by whole steps under the lock; a poisoned map is consistent.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more of `tenant`'s connections, or `None` at the cap
    /// (counted as refused on `on`).
    pub fn enter(self: &Arc<Self>, tenant: &str, on: ListenerKind) -> Option<TenantSlot> {
        let mut open = self.lock();
        let n = open.entry(tenant.to_string()).or_default();
        if *n >= self.max.load(Ordering::Relaxed) {
            drop(open);
            count_refusal(RefusalReason::TenantCap, on);
            return None;
        }
        *n += 1;
        Some(TenantSlot {
            owner: self.clone(),
            tenant: tenant.to_string(),
        })
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// `tenant`'s open connections.
    pub fn open(&self, tenant: &str) -> u64 {
        self.lock().get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(n) = open.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_per_tenant_and_slots_come_back() {
        let cap = TenantConnections::new(2);
        let a1 = cap.enter("ten_a", ListenerKind::PublicTcp).unwrap();
        let _a2 = cap.enter("ten_a", ListenerKind::PublicTcp).unwrap();
        assert!(
            cap.enter("ten_a", ListenerKind::PublicTcp).is_none(),
            "a third is refused"
        );
        let _b = cap
            .enter("ten_b", ListenerKind::PublicTcp)
            .expect("another tenant is not affected");
        drop(a1);
        assert_eq!(cap.open("ten_a"), 1);
        let _a3 = cap
            .enter("ten_a", ListenerKind::PublicTcp)
            .expect("a freed slot is taken again");
        assert_eq!(cap.open("ten_a"), 2);
    }
}
