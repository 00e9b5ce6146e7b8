//! `beamd replay`: stored events printed in order, as JSON lines or text.

use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use beamd_events::envelope::{decode_record, hex};
use beamd_events::log::{ChainReader, JetStreamConfig, JetStreamStore, Store};
use beamd_events::{Envelope, StreamId};
use serde_json::json;

use crate::data_dir::DataDir;
use crate::progress::events_bar;

/// How `beamd replay` prints each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFormat {
    /// One JSON object per line.
    Json,
    /// One human-readable line per event.
    Text,
}

/// What `beamd replay` prints.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// The data directory to read.
    pub data_dir: std::path::PathBuf,
    /// A NATS JetStream log to read instead of the data dir's sled log.
    pub log: Option<String>,
    /// The first seq printed.
    pub from: u64,
    /// The last seq printed (none: the head).
    pub to: Option<u64>,
    /// Only the events of this stream.
    pub stream: Option<String>,
    /// How each event is printed.
    pub format: ReplayFormat,
}

/// The JSON form of an envelope, as `beamd replay --format json` prints it.
pub fn envelope_json(env: &Envelope) -> serde_json::Value {
    let event = serde_json::to_value(&env.event)
        .ok()
        .and_then(|v| v.get(env.event.kind()).cloned())
        .unwrap_or(serde_json::Value::Null);
    json!({
        "seq": env.seq,
        "at": env.at,
        "stream": env.stream.as_str(),
        "version": env.version,
        "schema": env.schema,
        "type": env.event.kind(),
        "event": event,
        "prevHash": hex(&env.prev_hash),
        "hash": hex(&env.hash),
    })
}

fn text_line(env: &Envelope) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(env.at);
    let payload = envelope_json(env)["event"].to_string();
    format!(
        "{:>8}  {}  {}@{}  {}  {}",
        env.seq,
        humantime::format_rfc3339_millis(at),
        env.stream,
        env.version,
        env.event.kind(),
        payload
    )
}

/// Runs `beamd replay`.
pub async fn run(args: ReplaySettings) -> Result<ExitCode> {
    match &args.log {
        Some(url) => {
            let store = JetStreamStore::open(&JetStreamConfig::parse(url)?).await?;
            replay(store.as_ref(), &args)
        }
        None => {
            let dir = DataDir::open_existing(&args.data_dir)?;
            replay(dir.log_store()?.as_ref(), &args)
        }
    }
}

fn replay(store: &impl Store, args: &ReplaySettings) -> Result<ExitCode> {
    let to = args.to.unwrap_or(u64::MAX).min(store.last_seq()?);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut emit = |env: &Envelope| -> std::io::Result<()> {
        match args.format {
            ReplayFormat::Json => writeln!(out, "{}", envelope_json(env)),
            ReplayFormat::Text => writeln!(out, "{}", text_line(env)),
        }
    };
    let result = match &args.stream {
        Some(stream) => {
            let stream = StreamId::new(stream.clone())?;
            let mut written = Ok(());
            for seq in store.stream_seqs(&stream, 1, usize::MAX)? {
                if seq < args.from || seq > to {
                    continue;
                }
                let bytes = store
                    .get(seq)?
                    .with_context(|| format!("seq {seq} is indexed but missing"))?;
                written = emit(&decode_record(seq, &bytes)?);
                if written.is_err() {
                    break;
                }
            }
            written
        }
        None => {
            let bar = events_bar(to.saturating_sub(args.from) + 1, "replay");
            let mut written = Ok(());
            for env in ChainReader::new(store, args.from, to)? {
                written = emit(&env?);
                if written.is_err() {
                    break;
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            written
        }
    };
    match result.and_then(|_| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `beamd replay | head` is a normal way to read the start of a log.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}
