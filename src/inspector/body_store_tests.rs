//! Unit tests of the body store: its cap, its chunks, its time to live.

use super::*;

fn detail(body: usize) -> Detail {
    Detail {
        request_headers: vec![("content-type".into(), "application/json".into())],
        response_headers: vec![],
        request_body: vec![b'x'; body],
        response_body: b"ok".to_vec(),
    }
}

fn store(dir: &std::path::Path, cap: u64, ttl: u64) -> (sled::Db, BodyStore) {
    // sled's background flusher may hold the previous handle's lock a moment longer.
    let mut db = sled::Config::new().path(dir).open();
    for _ in 0..100 {
        if db.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        db = sled::Config::new().path(dir).open();
    }
    let db = db.unwrap();
    let limits = BodyLimits {
        cap_bytes: cap,
        ttl: Duration::from_millis(ttl),
    };
    let s = BodyStore::open(&db, limits).unwrap();
    (db, s)
}

#[test]
fn stays_under_its_cap_dropping_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, s) = store(dir.path(), 100_000, 3_600_000);
    for i in 0..500u64 {
        assert!(s
            .put(&format!("req_{i:04}"), 1_000 + i, &detail(1_000))
            .unwrap());
        assert!(s.used() <= 100_000, "{} after {i}", s.used());
    }
    assert!(s.get("req_0000").unwrap().is_none(), "the oldest went");
    assert_eq!(s.get("req_0499").unwrap(), Some(detail(1_000)));
    assert!(!s.put("huge", 5_000, &detail(200_000)).unwrap());
    assert!(s.get("huge").unwrap().is_none());
}

#[test]
fn a_batch_is_stored_in_chunks_found_by_id_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<_> = (0..300u64)
        .map(|i| (format!("req_{i:04}"), 1_000 + i, detail(i as usize)))
        .collect();
    {
        let (_db, s) = store(dir.path(), 1 << 20, 3_600_000);
        assert_eq!(s.put_many(&items).unwrap(), 300);
        assert_eq!(s.get("req_0123").unwrap(), Some(detail(123)));
    }
    let (_db, s) = store(dir.path(), 60_000, 3_600_000);
    for (id, _, d) in items.iter().rev().take(10) {
        assert_eq!(s.get(id).unwrap().as_ref(), Some(d), "{id}");
    }
    // A smaller cap on reopen prunes whole chunks, oldest first, at the next write.
    s.put("req_new", 5_000, &detail(10)).unwrap();
    assert!(s.used() <= 60_000, "{}", s.used());
    assert!(s.get("req_0000").unwrap().is_none());
    assert_eq!(s.get("req_new").unwrap(), Some(detail(10)));
}

#[test]
fn expires_after_its_time_to_live_and_counts_again_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let used = {
        let (_db, s) = store(dir.path(), 1 << 20, 1_000);
        s.put("req_a", 10_000, &detail(10)).unwrap();
        s.put("req_b", 10_500, &detail(10)).unwrap();
        s.put("req_c", 11_200, &detail(10)).unwrap();
        assert!(s.get("req_a").unwrap().is_none(), "expired at 11,200");
        assert!(s.get("req_b").unwrap().is_some());
        s.used()
    };
    let (_db, s) = store(dir.path(), 1 << 20, 1_000);
    assert_eq!(s.used(), used);
    s.expire(12_000).unwrap();
    assert!(s.get("req_b").unwrap().is_none());
    assert!(s.get("req_c").unwrap().is_some());
}
