//! `beamd checkpoint` (print, and save with its tiles) and `beamd verify-proof`
//! (an inclusion proof bundle checked offline against a checkpoint and a key).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::envelope::{decode_record, hex};
use beamd_events::merkle::{leaf_hash, verify_inclusion, TreeHash};

use super::checkpoint::SignedCheckpoint;
use super::cosign::Quorum;
use super::mirror::{load, save, verifier_from};
use super::note::Verifier;
use crate::client::ApiSettings;

/// Runs `beamd checkpoint`: prints the API's checkpoint, verified with its
/// key, and with `save_in` keeps it there with the key and the tiles.
pub async fn checkpoint(
    api: &ApiSettings,
    save_in: Option<&Path>,
    quorum: &Quorum,
) -> Result<ExitCode> {
    let mut client = api.connect().await?;
    let note = client.get_text("/log/checkpoint").await?;
    let verifier = Verifier::parse(&client.get_text("/log/key").await?)
        .context("the API's verifier key does not parse")?;
    let signed = SignedCheckpoint::open(&note, &verifier)
        .context("the API's checkpoint does not verify with its key")?;
    if !quorum.witnesses.is_empty() {
        let n = quorum.check(&note)?;
        eprintln!(
            "beamd checkpoint: witnessed by {n} of {} witnesses",
            quorum.witnesses.len()
        );
    }
    print!("{note}");
    if let Some(dir) = save_in {
        let tiles = save(&mut client, dir, &signed, &verifier).await?;
        eprintln!(
            "beamd checkpoint: saved the checkpoint of {} events, its key and {tiles} tiles in {}",
            signed.checkpoint.size,
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    seq: u64,
    tree_size: u64,
    record: String,
    proof: Vec<String>,
    checkpoint: Option<String>,
}

fn hash(b64: &str) -> Result<TreeHash> {
    B64.decode(b64)
        .ok()
        .and_then(|h| h.try_into().ok())
        .with_context(|| format!("{b64:?} is not a base64 SHA-256 hash"))
}

/// Runs `beamd verify-proof`: the proof bundle in `bundle_file` checked
/// against `public_key` and its own checkpoint, or the one saved at `checkpoint`.
pub fn verify_proof(
    bundle_file: &Path,
    public_key: &str,
    checkpoint: Option<&Path>,
    quorum: &Quorum,
) -> Result<ExitCode> {
    let verifier = verifier_from(public_key)?;
    let text = std::fs::read_to_string(bundle_file)
        .with_context(|| format!("cannot read {}", bundle_file.display()))?;
    let bundle: Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof bundle", bundle_file.display()))?;
    let note = match checkpoint {
        Some(path) => load(path)?.note,
        None => bundle
            .checkpoint
            .clone()
            .context("the bundle carries no checkpoint: pass --checkpoint")?,
    };
    let signed = SignedCheckpoint::open(&note, &verifier)?;
    if !quorum.witnesses.is_empty() {
        quorum.check(&note)?;
    }
    let cp = &signed.checkpoint;
    if cp.size != bundle.tree_size {
        bail!(
            "the proof is for a tree of {} events, the checkpoint's has {}: fetch the proof with ?size={}",
            bundle.tree_size,
            cp.size,
            cp.size
        );
    }
    let record = B64
        .decode(&bundle.record)
        .context("the bundle's record is not base64")?;
    let proof = bundle
        .proof
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>>>()?;
    let index = bundle.seq.checked_sub(1).context("seq 0 is no event")?;
    if !verify_inclusion(&leaf_hash(&record), index, cp.size, &proof, &cp.root) {
        eprintln!(
            "beamd verify-proof: FAILED: event {} is not proved in the tree of {} events with root {}",
            bundle.seq,
            cp.size,
            hex(&cp.root)
        );
        return Ok(ExitCode::FAILURE);
    }
    let env = decode_record(bundle.seq, &record)?;
    println!(
        "verified: event {} ({} on {}) is in {}'s tree of {} events, root {}",
        bundle.seq,
        env.event.kind(),
        env.stream,
        cp.origin,
        cp.size,
        hex(&cp.root)
    );
    Ok(ExitCode::SUCCESS)
}
