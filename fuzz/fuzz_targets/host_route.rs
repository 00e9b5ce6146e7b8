//! Host and route parsing: a request's Host header becomes a routing key, and
//! a gateway route's path pattern is parsed and matched against a path. No
//! input panics; a valid host name is its own key, with or without a port;
//! a pattern that parses matches consistently and ties with itself.

#![no_main]

use std::cmp::Ordering;

use beamd_domain::gateway::PathPattern;
use beamd_domain::{check_host, request_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let host = parts.next().unwrap_or("");
    let pattern = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");

    let key = request_host(host);
    assert!(!key.bytes().any(|b| b.is_ascii_uppercase()));
    if check_host("host", host).is_ok() {
        assert_eq!(key, host, "a valid host name is its own key");
        assert_eq!(request_host(&format!("{host}:8443")), key);
    }

    if let Ok(p) = PathPattern::parse(pattern) {
        assert_eq!(p.specificity(&p), Ordering::Equal);
        let first = p.matches(path);
        assert_eq!(first, p.matches(path));
        // Empty segments are ignored, so doubling the slashes changes nothing.
        assert_eq!(first, p.matches(&path.replace('/', "//")));
    }
});
