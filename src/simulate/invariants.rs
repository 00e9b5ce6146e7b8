//! What must hold after every step of the simulated world.

use std::collections::{BTreeMap, BTreeSet};

use beamd_events::log::{MemoryStore, Store};
use beamd_events::{Envelope, Event, EventLog, LogHead, StreamId, GENESIS_HASH};
use beamd_simulations::Violation;
use beamd_snapshots::Fold;

use super::agents::NODE;
use super::ledger::Ledger;
use crate::actors::Core;
use crate::domain::{Key, Tunnel, TunnelStatus};
use crate::edge::EdgeContext;
use crate::projections::{InspectorProjection, Projections};

fn broke(invariant: &str, detail: impl Into<String>) -> Violation {
    Violation::new(invariant, detail)
}

/// What the invariants read of the simulated world: its log, core and
/// edge, and what the workload did and was told.
pub(super) struct Observed<'a> {
    /// The log.
    pub log: &'a dyn EventLog,
    /// The store under the log, as a crash left it.
    pub store: &'a MemoryStore,
    /// The core.
    pub core: &'a Core,
    /// The edge agents' sessions run on.
    pub ctx: &'a EdgeContext,
    /// What each tunnel carried.
    pub ledger: &'a Ledger,
    /// The highest head acknowledged to a caller.
    pub acked: LogHead,
    /// Every key the workload issued.
    pub keys: &'a [String],
    /// Every tunnel the workload opened.
    pub tunnels: &'a [String],
}

/// Cheap checks every step; everything every 20 steps and after a restart.
pub(super) async fn check(w: &Observed<'_>, step: u64, restarted: bool) -> Result<(), Violation> {
    acknowledged_survive(w)?;
    if restarted || step % 20 == 0 {
        check_full(w).await?;
    }
    Ok(())
}

/// No acknowledged event is lost: the acknowledged head is still in the
/// store, with the same hash.
fn acknowledged_survive(w: &Observed<'_>) -> Result<(), Violation> {
    const NAME: &str = "no acknowledged event is lost across a crash";
    let (acked, head) = (w.acked, w.log.head());
    if acked.seq == 0 {
        return Ok(());
    }
    if head.seq < acked.seq {
        return Err(broke(
            NAME,
            format!(
                "acknowledged seq {} but the log ends at {}",
                acked.seq, head.seq
            ),
        ));
    }
    let bytes = w
        .store
        .get(acked.seq)
        .map_err(|e| broke(NAME, e.to_string()))?
        .ok_or_else(|| broke(NAME, format!("seq {} is gone", acked.seq)))?;
    let (_, hash) = beamd_events::envelope::verify_record(acked.seq, &bytes)
        .map_err(|e| broke(NAME, e.to_string()))?;
    if hash != acked.hash {
        return Err(broke(
            NAME,
            format!("seq {} changed after it was acknowledged", acked.seq),
        ));
    }
    Ok(())
}

pub(super) async fn all_events(log: &dyn EventLog) -> Result<Vec<Envelope>, Violation> {
    const NAME: &str = "the hash chain verifies";
    let mut out: Vec<Envelope> = Vec::new();
    loop {
        let batch = log
            .read_from(out.len() as u64 + 1, 4096)
            .await
            .map_err(|e| broke(NAME, e.to_string()))?;
        if batch.is_empty() {
            break;
        }
        for env in batch {
            let prev = out.last().map(|e| e.hash).unwrap_or(GENESIS_HASH);
            if env.seq != out.len() as u64 + 1 || env.prev_hash != prev {
                return Err(broke(
                    NAME,
                    format!("seq {} does not follow the record before it", env.seq),
                ));
            }
            out.push(env);
        }
    }
    let head = log.head();
    let last = out
        .last()
        .map(|e| (e.seq, e.hash))
        .unwrap_or((0, GENESIS_HASH));
    if last != (head.seq, head.hash) {
        return Err(broke(NAME, "the head is not the end of the chain"));
    }
    Ok(out)
}

/// Every invariant.
pub(super) async fn check_full(w: &Observed<'_>) -> Result<(), Violation> {
    // Sessions whose agent left get to notice and end, and live sessions
    // record their window.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let events = all_events(w.log).await?;
    w.ledger.check(&super::ledger::recorded(&events))?;
    let head = w.log.head().seq;
    w.core
        .projections()
        .wait_for(head)
        .await
        .map_err(|e| broke("the projector keeps up", e.to_string()))?;
    let live: Projections = w.core.queries().snapshot();
    let mut fresh = Projections {
        inspector: InspectorProjection::with_capacity(live.inspector.capacity),
        ..Projections::default()
    };
    events.iter().for_each(|e| fresh.apply(e));
    let differs = [
        ("summary", fresh.summary != live.summary),
        ("usage", fresh.usage != live.usage),
        ("inspector", fresh.inspector != live.inspector),
        ("status", fresh.status != live.status),
        ("domains", fresh.domains != live.domains),
        ("catalog", fresh.catalog != live.catalog),
        ("gateway", fresh.gateway != live.gateway),
        ("accounts", fresh.accounts != live.accounts),
        ("seq", fresh.seq != live.seq),
    ];
    if let Some((name, _)) = differs.iter().find(|(_, d)| *d) {
        return Err(broke(
            "every projection equals its fold from scratch (snapshot + tail included)",
            format!("{name} differs at seq {head}"),
        ));
    }
    usage_is_the_sum_of_traffic(&events, &live)?;
    for t in live.catalog.tunnels.all() {
        if t.status == TunnelStatus::Online && t.node == NODE && !w.ctx.serves(&t.id) {
            return Err(broke(
                "a tunnel is online on the edge only while a session serves it",
                format!("{} is online on {NODE} and no session serves it", t.id),
            ));
        }
    }
    names_ports_and_limits(&live)?;
    entities_equal_their_streams(w, &events).await
}

fn usage_is_the_sum_of_traffic(events: &[Envelope], p: &Projections) -> Result<(), Violation> {
    let mut tenant_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        match &e.event {
            Event::TunnelOpened(o) => {
                tenant_of.insert(e.stream.as_str(), o.tenant.as_str());
            }
            Event::TrafficRecorded(t) => {
                if let Some(tenant) = tenant_of.get(e.stream.as_str()) {
                    *sums.entry(tenant.to_string()).or_default() += t.bytes_in + t.bytes_out;
                }
            }
            _ => {}
        }
    }
    for tenant in p.catalog.tenants.keys() {
        let want = sums.get(tenant).copied().unwrap_or(0);
        let got = p.usage.tenant(tenant).total.bytes();
        if got != want {
            return Err(broke(
                "usage totals equal the sum of traffic events",
                format!("tenant {tenant}: usage {got}, traffic events {want}"),
            ));
        }
    }
    let recorded = super::ledger::recorded(events);
    // Tunnels not released; a released one's last window leaves an entry without a status.
    for t in p.catalog.tunnels.all() {
        if t.status == TunnelStatus::Missing {
            continue;
        }
        let want = recorded.get(&t.id).copied().unwrap_or_default();
        let got = p.usage.tunnel(&t.id);
        if (got.bytes_in, got.bytes_out, got.requests)
            != (want.bytes_in, want.bytes_out, want.requests)
        {
            return Err(broke(
                "usage totals equal the sum of traffic events",
                format!("tunnel {}: usage {got:?}, traffic events {want:?}", t.id),
            ));
        }
    }
    Ok(())
}

fn names_ports_and_limits(p: &Projections) -> Result<(), Violation> {
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut live: BTreeMap<&str, u64> = BTreeMap::new();
    for t in p.catalog.tunnels.all() {
        if let Some(name) = &t.name {
            if !names.insert((t.tenant.clone(), name.clone())) {
                return Err(broke(
                    "live names are unique",
                    format!("{name} twice in {}", t.tenant),
                ));
            }
        }
        if let Some(port) = t.port {
            if !ports.insert(port) {
                return Err(broke("live ports are unique", format!("port {port} twice")));
            }
        }
        *live.entry(t.tenant.as_str()).or_default() += 1;
    }
    for (tenant, n) in live {
        let max = p
            .catalog
            .tenants
            .get(tenant)
            .and_then(|t| t.plan.max_tunnels);
        if max.is_some_and(|m| n > u64::from(m)) {
            return Err(broke(
                "plan limits hold",
                format!("{tenant} holds {n} tunnels, plan max {max:?}"),
            ));
        }
    }
    Ok(())
}

async fn entities_equal_their_streams(
    w: &Observed<'_>,
    events: &[Envelope],
) -> Result<(), Violation> {
    const NAME: &str = "replay of the log equals live state";
    let mut streams: BTreeMap<&str, Vec<&Envelope>> = BTreeMap::new();
    for e in events {
        streams.entry(e.stream.as_str()).or_default().push(e);
    }
    let fold = |id: &str| streams.get(id).map(|v| v.as_slice()).unwrap_or(&[]);
    for id in w.keys {
        let mut replayed = Key::default();
        fold(id).iter().for_each(|e| replayed.apply(e));
        if replayed.status == Default::default() {
            continue; // never issued (lost in a crash before it was acknowledged)
        }
        let actor = w
            .core
            .key(id)
            .await
            .map_err(|e| broke(NAME, e.to_string()))?;
        if actor != replayed {
            return Err(broke(
                NAME,
                format!("key {id}: actor {actor:?} vs replay {replayed:?}"),
            ));
        }
    }
    for id in w.tunnels {
        let mut replayed = Tunnel::default();
        fold(id).iter().for_each(|e| replayed.apply(e));
        if replayed.status == Default::default() {
            continue;
        }
        let actor = w
            .core
            .tunnel(id)
            .await
            .map_err(|e| broke(NAME, e.to_string()))?;
        if actor != replayed {
            return Err(broke(
                NAME,
                format!("tunnel {id}: actor {actor:?} vs replay {replayed:?}"),
            ));
        }
    }
    let _ = StreamId::new("x");
    Ok(())
}
