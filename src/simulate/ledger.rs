//! The traffic ledger: what each tunnel carried as the world saw it (bytes
//! its agents' services read and wrote during requests that completed, plus
//! traffic reported straight to the core), against which the log's
//! `TrafficRecorded` events are checked. A crash loses the traffic of the
//! window not yet recorded, as the design allows, so after a crash the
//! ledger starts again from what the log kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use beamd_events::vocabulary::TrafficRecorded;
use beamd_events::{Envelope, Event};
use beamd_simulations::Violation;

use super::public::{Carried, Outcome};

/// Byte and request totals of one tunnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests: u64,
}

#[derive(Debug, Default)]
struct Entry {
    expected: Totals,
    /// The service's counters when the last request ended.
    seen: (u64, u64),
    /// Why the totals cannot be exact any more (a request cut off midway).
    inexact: Option<String>,
}

/// Every tunnel's expected traffic.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    entries: BTreeMap<String, Entry>,
    carried: BTreeMap<String, Arc<Carried>>,
}

/// What the log recorded, per tunnel.
pub(super) fn recorded(events: &[Envelope]) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for e in events {
        if let Event::TrafficRecorded(t) = &e.event {
            let totals = out.entry(e.stream.as_str().to_string()).or_default();
            totals.bytes_in += t.bytes_in;
            totals.bytes_out += t.bytes_out;
            totals.requests += t.requests;
        }
    }
    out
}

impl Ledger {
    /// The counters of `tunnel`'s services.
    pub fn carried(&mut self, tunnel: &str) -> Arc<Carried> {
        self.entries.entry(tunnel.to_string()).or_default();
        self.carried.entry(tunnel.to_string()).or_default().clone()
    }

    /// Traffic the core recorded for `tunnel` directly.
    pub fn reported(&mut self, tunnel: &str, d: &TrafficRecorded) {
        let e = self.entries.entry(tunnel.to_string()).or_default();
        e.expected.bytes_in += d.bytes_in;
        e.expected.bytes_out += d.bytes_out;
        e.expected.requests += d.requests;
    }

    /// Every tunnel's service counters, before a request.
    pub fn before(&mut self) -> BTreeMap<String, (u64, u64)> {
        let now: BTreeMap<String, (u64, u64)> = self
            .carried
            .iter()
            .map(|(id, c)| (id.clone(), c.now()))
            .collect();
        for (id, counters) in &now {
            if let Some(e) = self.entries.get_mut(id) {
                if *counters != e.seen && e.inexact.is_none() {
                    e.inexact = Some("bytes reached the service outside a request".into());
                }
            }
        }
        now
    }

    /// Books a request that started with the counters at `before`, on the
    /// tunnel whose service saw it (the host may have moved to another
    /// tunnel since the world last looked). `routed`: the tunnel the edge
    /// routed the host to when the request started, if any.
    pub fn after(
        &mut self,
        before: &BTreeMap<String, (u64, u64)>,
        outcome: &Outcome,
        routed: Option<&str>,
    ) -> Result<(), Violation> {
        let mut moved = Vec::new();
        for (id, carried) in &self.carried {
            let now = carried.now();
            let was = before.get(id).copied().unwrap_or_default();
            if let Some(e) = self.entries.get_mut(id) {
                e.seen = now;
            }
            if now != was {
                moved.push((id.clone(), was, now));
            }
        }
        match (outcome, moved.as_slice()) {
            (Outcome::Served, [(id, was, now)]) => {
                if let Some(e) = self.entries.get_mut(id) {
                    e.expected.bytes_in += now.0 - was.0;
                    e.expected.bytes_out += now.1 - was.1;
                    e.expected.requests += 1;
                }
            }
            (Outcome::Served, []) => {
                return Err(Violation::new(
                    "the public gets what the service sent",
                    "a request was answered, yet no service saw it",
                ))
            }
            (Outcome::NotRouted(_), []) => {}
            (outcome, moved) => {
                // The edge counts what it writes into the tunnel's stream, so
                // a request cut on the way counts for the tunnel it was routed
                // to even when its service saw none of it.
                let ids = moved.iter().map(|(id, _, _)| id.as_str()).chain(routed);
                for id in ids {
                    if let Some(e) = self.entries.get_mut(id) {
                        e.inexact = Some(format!("a request ended as {outcome:?}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// After a crash: the log is the new starting point, and every tunnel is exact again.
    pub fn restart_from(&mut self, recorded: &BTreeMap<String, Totals>) {
        for (id, e) in &mut self.entries {
            e.expected = recorded.get(id).copied().unwrap_or_default();
            e.seen = self.carried.get(id).map(|c| c.now()).unwrap_or_default();
            e.inexact = None;
        }
    }

    /// Every exact tunnel's recorded traffic equals what it carried.
    pub fn check(&self, recorded: &BTreeMap<String, Totals>) -> Result<(), Violation> {
        for (id, e) in &self.entries {
            let got = recorded.get(id).copied().unwrap_or_default();
            if e.inexact.is_none() && got != e.expected {
                return Err(Violation::new(
                    "recorded traffic equals the traffic carried",
                    format!(
                        "{id}: the log recorded {got:?}, the services carried {:?}",
                        e.expected
                    ),
                ));
            }
        }
        Ok(())
    }
}
