//! `beamd bench h2` end to end, small: h2load (installed when missing)
//! against a real service directly and through a real tunnel, and a table
//! with figures in every row.

use crate::common;

use std::process::Command;

#[test]
fn bench_h2_measures_direct_and_both_upstreams() {
    let _turn = common::turns::heavy_blocking();
    common::tools::debian(&["/usr/bin/h2load"], &["nghttp2-client"]).expect("h2load");
    let out = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args(["bench", "h2", "--seconds", "1", "--clients", "2"])
        .args(["--streams", "4", "--transport", "tcp"])
        .env("BEAMD_LOG", "warn")
        .output()
        .expect("run beamd bench h2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench h2 failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| direct") || l.starts_with("| beamd"))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let per_sec: f64 = cells[2].parse().expect(row);
        let p99: f64 = cells[5].trim_end_matches(" ms").parse().expect(row);
        assert!(per_sec > 0.0 && p99 > 0.0, "{row}");
    }
    assert!(stdout.contains("service over h2c") && stdout.contains("service over http1"));
}
