//! Usage projection tests.

use super::*;
use crate::domain::calendar::days_from_civil;
use crate::domain::testkit::envelope;
use beamd_events::vocabulary::{
    KeyCountersReset, KeyIssued, KeyKind, Plan, TenantCreated, TrafficRecorded, TransportKind,
    TunnelOpened, TunnelProtocol, TunnelReleased, TunnelWentOffline,
};

fn day_ms(y: i64, m: u32, d: u32) -> u64 {
    days_from_civil(y, m, d) as u64 * DAY_MS
}

fn opened(key: &str) -> Event {
    TunnelOpened {
        tenant: "ten_1".into(),
        key: key.into(),
        protocol: TunnelProtocol::Tcp,
        name: None,
        port: Some(1),
        transport: TransportKind::Tcp,
        node: "n".into(),
        local_addr: "x".into(),
    }
    .into()
}

fn traffic(bytes_in: u64, bytes_out: u64) -> Event {
    TrafficRecorded {
        bytes_in,
        bytes_out,
        connections: 1,
        requests: 2,
        window_ms: 1_000,
    }
    .into()
}

fn world() -> (UsageProjection, u64) {
    let mut u = UsageProjection::default();
    let t0 = day_ms(2026, 1, 31) + 1_000;
    let mut v = 0;
    let mut push = |u: &mut UsageProjection, stream: &str, at: u64, e: Event| {
        v += 1;
        u.apply(&envelope(stream, v, at, e));
    };
    let tenant = TenantCreated {
        slug: "a".into(),
        name: "A".into(),
        plan: Plan::default(),
        tunnel_base: "a.example".into(),
    };
    push(&mut u, "ten_1", t0, tenant.into());
    let key = KeyIssued {
        tenant: "ten_1".into(),
        label: "k".into(),
        kind: KeyKind::Agent,
        scopes: vec![],
        secret_hash: String::new(),
        limit_bytes: None,
    };
    push(&mut u, "tok_1", t0, key.into());
    push(&mut u, "tun_1", t0, opened("tok_1"));
    push(&mut u, "tun_2", t0, opened("tok_1"));
    push(&mut u, "tun_1", t0 + 5, traffic(10, 20));
    push(&mut u, "tun_2", t0 + DAY_MS, traffic(100, 200)); // Feb 1
    push(
        &mut u,
        "tun_2",
        t0 + DAY_MS,
        TunnelWentOffline { reason: "x".into() }.into(),
    );
    push(&mut u, "tun_1", t0 + 3 * DAY_MS, traffic(1, 2)); // Feb 3
    push(&mut u, "tun_1", t0 + 3 * DAY_MS, TunnelReleased {}.into());
    (u, t0)
}

#[test]
fn days_sum_traffic_and_peaks() {
    let (u, t0) = world();
    let series = u.series("ten_1", t0 + 3 * DAY_MS, 30);
    assert_eq!(series.len(), 30);
    let jan31 = series[26].1;
    assert_eq!(
        (jan31.bytes_in, jan31.bytes_out, jan31.requests),
        (10, 20, 2)
    );
    assert_eq!(jan31.peak_tunnels, 2);
    assert_eq!(jan31.events, 5);
    assert_eq!(series[27].1.bytes(), 300);
    assert_eq!(
        series[27].1.peak_tunnels, 2,
        "the peak counts tunnels online when the day began"
    );
    assert_eq!(
        series[28].1,
        DayUsage::default(),
        "days without events are zero"
    );
    assert_eq!(series[29].1.bytes(), 3);
    let totals = u.tenant("ten_1");
    assert_eq!((totals.total.bytes(), totals.online_tunnels), (333, 0));
    assert_eq!(totals.last_seen, Some(t0 + 3 * DAY_MS));
}

#[test]
fn month_bytes_stay_inside_the_calendar_month() {
    let (u, t0) = world();
    assert_eq!(u.month_bytes("ten_1", t0), 30);
    assert_eq!(u.month_bytes("ten_1", t0 + 3 * DAY_MS), 303);
    assert_eq!(u.month_bytes("ten_other", t0), 0);
}

#[test]
fn key_counters_count_since_reset() {
    let (mut u, t0) = world();
    let k = u.key("tok_1");
    assert_eq!((k.bytes_up, k.bytes_down, k.connections), (111, 222, 3));
    assert_eq!(k.last_used_at, Some(t0 + 3 * DAY_MS));
    u.apply(&envelope(
        "tok_1",
        99,
        t0 + 4 * DAY_MS,
        KeyCountersReset {}.into(),
    ));
    let k = u.key("tok_1");
    assert_eq!((k.bytes(), k.connections), (0, 0));
    assert_eq!(k.last_used_at, Some(t0 + 3 * DAY_MS));
    crate::domain::testkit::round_trip(&u);
}
