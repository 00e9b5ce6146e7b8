//! `beamd bench idle` end to end, small: a real edge, real agents and real
//! public connections, and a table with a figure for every column.

use crate::common;

use std::process::Command;

#[test]
fn bench_idle_measures_every_column() {
    let _turn = common::turns::heavy_blocking();
    let out = Command::new(env!("CARGO_BIN_EXE_beamd"))
        .args([
            "bench",
            "idle",
            "--tunnels",
            "4",
            "--connections",
            "40",
            "--transport",
            "tcp",
            "--transport",
            "quic",
        ])
        .env("BEAMD_LOG", "warn")
        .output()
        .expect("run beamd bench idle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench idle failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for transport in ["tcp", "quic"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {transport} |")))
            .unwrap_or_else(|| panic!("no {transport} row in:\n{stdout}"));
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "{row}");
        let at_rest: f64 = cells[1].parse().expect("edge at rest MiB");
        assert!(at_rest > 1.0, "an edge takes more than 1 MiB: {row}");
        for cell in &cells[2..] {
            let kib: Result<f64, _> = cell.parse();
            assert!(kib.is_ok(), "{cell:?} is not a figure in {row}");
        }
    }
}
