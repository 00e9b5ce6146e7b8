//! The `beamd` binary: parses the command line and runs one command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: recording every request allocates
/// and frees many small buffers (encoding, hashing, sled's page updates), and
/// glibc's allocator was a quarter of the edge's profile under that load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let parsed = beamd::cli::parse();
    // The simulation injects failures on purpose; their warnings are noise there.
    let default_filter = match parsed.cli.command {
        beamd::cli::Command::Simulate(_) => "error",
        _ => "warn,beamd=info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BEAMD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    match beamd::cli::run(parsed) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("beamd: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message before it already carries (errors that print their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
