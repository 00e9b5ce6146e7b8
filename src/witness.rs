//! `beamd witness`: a transparency-log witness speaking C2SP tlog-witness.
//! It cosigns a log's checkpoint (C2SP tlog-cosignature/v1) only when the
//! log's key signed it and it is a consistent extension of the last one it
//! cosigned for that log, so a log cannot show two histories to two
//! auditors who each require the witnesses' cosignatures.
//!
//! `POST /add-checkpoint`, body `old N\n`, the consistency proof from N
//! (base64 hashes, a line each), a blank line, the signed checkpoint.
//! Answers: 200 with the cosignature line; 404 for a log it does not know;
//! 403 when the log's signature is missing or wrong; 400 for a malformed
//! request or N above the checkpoint's size; 409 (`text/x.tlog.size`, the
//! size it holds) when N is not the size it last cosigned; 422 when the
//! proof does not prove the extension (or the same size has another root).
//!
//! State: per log, the size and root last cosigned, one file each, written
//! whole (temporary file, fsync, rename, fsync of the folder) before the
//! answer; the check of N and the write happen under one lock, so two
//! requests never both extend the same state. A kill -9 leaves the old or
//! the new state, never a torn one, and it never cosigns two inconsistent
//! checkpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::envelope::hex;
use beamd_events::merkle::{empty_root, verify_consistency, TreeHash};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::tlog::{split_note, Checkpoint, CosignKey, Verifier};

/// The witness's key file in its data dir (0600).
pub const KEY_FILE: &str = "witness.key";
/// Its verifier key, for logs and auditors.
pub const VERIFIER_FILE: &str = "witness.pub";
/// The most a request may carry.
const MAX_BODY: usize = 1 << 16;
/// The most proof lines a request may carry (C2SP: 63).
const MAX_PROOF: usize = 63;

/// What a witness holds of one log: the last size and root it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    size: u64,
    root: TreeHash,
}

/// A witness: its key, the logs it knows, and their heads.
pub struct Witness {
    key: CosignKey,
    logs: HashMap<String, Verifier>,
    state: PathBuf,
    heads: Mutex<HashMap<String, Head>>,
}

/// How `beamd witness` runs.
#[derive(Debug, Clone)]
pub struct WitnessSettings {
    /// Its data dir: the key and each log's head.
    pub data_dir: PathBuf,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The logs it witnesses: each log's verifier key.
    pub logs: Vec<String>,
    /// Its name when it makes its key.
    pub name: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The file of `origin`'s head.
fn head_file(state: &Path, origin: &str) -> PathBuf {
    state.join(hex(&Sha256::digest(origin.as_bytes()).into()))
}

impl Witness {
    /// Opens (or makes) the witness in `dir`: its key, and the heads stored
    /// for `logs` (`ORIGIN=VKEY` or a bare verifier key).
    pub fn open(dir: &Path, name: Option<&str>, logs: &[String]) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
        let mut known = HashMap::new();
        for text in logs {
            let (origin, vkey) = match text.split_once('=') {
                Some((origin, vkey)) if !origin.contains('+') => (Some(origin), vkey),
                _ => (None, text.as_str()),
            };
            let verifier = Verifier::parse(vkey)
                .with_context(|| format!("--log {text}: not a log's verifier key"))?;
            if let Some(origin) = origin.filter(|o| *o != verifier.name()) {
                bail!(
                    "--log {text}: the key is {:?}'s, not {origin:?}'s",
                    verifier.name()
                );
            }
            known.insert(verifier.name().to_string(), verifier);
        }
        if known.is_empty() {
            bail!("no log to witness: give --log ORIGIN=VKEY (the log's verifier key)");
        }
        let path = dir.join(KEY_FILE);
        let key = match (path.exists(), name) {
            (false, None) => bail!(
                "{} has no witness key yet: name the witness with --name (a URL without scheme, e.g. witness.example.com/w1)",
                dir.display()
            ),
            (_, name) => {
                let (key, created) = CosignKey::load_or_create(&path, name.unwrap_or(""))?;
                if let Some(wanted) = name.filter(|n| *n != key.name()) {
                    bail!(
                        "--name {wanted:?} differs from the name of the existing witness key {:?} in {}",
                        key.name(),
                        path.display()
                    );
                }
                let vkey = key.verifier().encode();
                if created {
                    std::fs::write(dir.join(VERIFIER_FILE), format!("{vkey}\n"))
                        .context("cannot write the witness's verifier key")?;
                    eprintln!("beamd witness: created the witness key {} ({vkey})", path.display());
                }
                key
            }
        };
        let state = dir.join("heads");
        std::fs::create_dir_all(&state)
            .with_context(|| format!("cannot make {}", state.display()))?;
        let mut heads = HashMap::new();
        for origin in known.keys() {
            if let Some(head) = read_head(&head_file(&state, origin))? {
                heads.insert(origin.clone(), head);
            }
        }
        Ok(Self {
            key,
            logs: known,
            state,
            heads: Mutex::new(heads),
        })
    }

    /// The key logs and auditors check its cosignatures with.
    pub fn verifier_key(&self) -> String {
        self.key.verifier().encode()
    }

    /// Answers one `add-checkpoint` body.
    async fn add_checkpoint(&self, body: &str) -> (StatusCode, String) {
        let request = match parse_request(body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e:#}\n")),
        };
        let origin = request.note.split('\n').next().unwrap_or("");
        let Some(verifier) = self.logs.get(origin) else {
            return (
                StatusCode::NOT_FOUND,
                format!("this witness does not know the log {origin:?}\n"),
            );
        };
        let text = match verifier.open(&request.note) {
            Ok(text) => text,
            Err(e) => return (StatusCode::FORBIDDEN, format!("{e:#}\n")),
        };
        let checkpoint = match Checkpoint::parse_with_extensions(text) {
            Ok(c) => c,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e:#}\n")),
        };
        if request.old > checkpoint.size {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "old {} is past the checkpoint's size {}\n",
                    request.old, checkpoint.size
                ),
            );
        }
        let mut heads = self.heads.lock().await;
        let held = heads.get(origin).copied();
        let held_size = held.map_or(0, |h| h.size);
        if request.old != held_size {
            return (StatusCode::CONFLICT, format!("{held_size}\n"));
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                "an empty tree has the empty root\n".into(),
            );
        }
        // Nothing held (or only the empty tree, which every tree extends):
        // the first checkpoint is taken as it is, with no proof.
        let consistent = match held.filter(|h| h.size > 0) {
            None => request.proof.is_empty(),
            Some(h) => verify_consistency(
                h.size,
                checkpoint.size,
                &h.root,
                &checkpoint.root,
                &request.proof,
            ),
        };
        if !consistent {
            tracing::warn!(
                origin,
                old = held_size,
                size = checkpoint.size,
                "refused a checkpoint that does not extend the one cosigned: a fork of the log, or a bad proof"
            );
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the checkpoint of {} events is not proved to extend the one of {held_size} this witness cosigned\n",
                    checkpoint.size
                ),
            );
        }
        let head = Head {
            size: checkpoint.size,
            root: checkpoint.root,
        };
        if held != Some(head) {
            if let Err(e) = write_head(&self.state, origin, head) {
                tracing::error!(origin, "cannot store the log's head: {e:#}");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the witness cannot store its state\n".into(),
                );
            }
            heads.insert(origin.to_string(), head);
            tracing::info!(origin, size = checkpoint.size, "cosigned");
        }
        (StatusCode::OK, self.key.cosign(text, now()))
    }
}

struct AddCheckpoint {
    old: u64,
    proof: Vec<TreeHash>,
    note: String,
}

fn parse_request(body: &str) -> Result<AddCheckpoint> {
    let (first, rest) = body
        .split_once('\n')
        .context("the body has no `old N` line")?;
    let old = first
        .strip_prefix("old ")
        .context("the body does not start with `old N`")?;
    if old.is_empty() || (old.len() > 1 && old.starts_with('0')) {
        bail!("`old {old}` is not a number without leading zeroes");
    }
    let old: u64 = old
        .parse()
        .with_context(|| format!("`old {old}` is not a number"))?;
    // No proof: the blank line comes at once; else after the proof's lines.
    let (proof, note) = match rest.strip_prefix('\n') {
        Some(note) => ("", note),
        None => rest
            .split_once("\n\n")
            .context("no blank line before the checkpoint")?,
    };
    let proof = proof
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            B64.decode(l)
                .ok()
                .and_then(|h| TreeHash::try_from(h).ok())
                .with_context(|| format!("the proof line {l:?} is not a base64 SHA-256 hash"))
        })
        .collect::<Result<Vec<_>>>()?;
    if proof.len() > MAX_PROOF {
        bail!("a proof of {} hashes: at most {MAX_PROOF}", proof.len());
    }
    split_note(note)?;
    Ok(AddCheckpoint {
        old,
        proof,
        note: note.to_string(),
    })
}

fn read_head(path: &Path) -> Result<Option<Head>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut lines = text.lines().skip(1);
    let size = lines.next().and_then(|s| s.parse().ok());
    let root = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| TreeHash::try_from(r).ok());
    match (size, root) {
        (Some(size), Some(root)) => Ok(Some(Head { size, root })),
        _ => bail!("{} is not a log head (origin, size, root)", path.display()),
    }
}

/// Writes `origin`'s head whole: a new file, synced, renamed over the old,
/// and the folder synced, so a crash leaves one or the other.
fn write_head(state: &Path, origin: &str, head: Head) -> Result<()> {
    use std::io::Write;
    let path = head_file(state, origin);
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{origin}\n{}\n{}\n", head.size, B64.encode(head.root)).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(state)?.sync_all()?;
    Ok(())
}

/// Runs `beamd witness` until the process is stopped.
pub async fn run(settings: WitnessSettings) -> Result<std::process::ExitCode> {
    let witness = Arc::new(Witness::open(
        &settings.data_dir,
        settings.name.as_deref(),
        &settings.logs,
    )?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    crate::say!(
        "beamd witness: listening on {} as {}",
        listener.local_addr()?,
        witness.verifier_key()
    );
    loop {
        let (socket, _) = listener.accept().await?;
        let witness = witness.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let witness = witness.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&witness, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

async fn answer(witness: &Witness, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, text) = match (req.method(), req.uri().path()) {
        (&Method::POST, "/add-checkpoint") => {
            match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => match std::str::from_utf8(&body.to_bytes()) {
                    Ok(body) => witness.add_checkpoint(body).await,
                    Err(_) => (
                        StatusCode::BAD_REQUEST,
                        "the body is not UTF-8\n".to_string(),
                    ),
                },
                Err(_) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("at most {MAX_BODY} bytes\n"),
                ),
            }
        }
        (_, "/add-checkpoint") => (StatusCode::METHOD_NOT_ALLOWED, "POST only\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "this witness serves POST /add-checkpoint\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    let kind = match status {
        StatusCode::CONFLICT => "text/x.tlog.size",
        _ => "text/plain; charset=utf-8",
    };
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(kind),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_parses_with_and_without_a_proof() {
        let note = "log\n3\nAAAA\n\n\u{2014} log AAAA\n";
        let r = parse_request(&format!("old 0\n\n{note}")).unwrap();
        assert_eq!((r.old, r.proof.len(), r.note.as_str()), (0, 0, note));
        let h = B64.encode([7u8; 32]);
        let r = parse_request(&format!("old 2\n{h}\n{h}\n\n{note}")).unwrap();
        assert_eq!((r.old, r.proof.len()), (2, 2));
        assert!(parse_request(&format!("old 02\n\n{note}")).is_err());
        assert!(parse_request(&format!("new 2\n\n{note}")).is_err());
        assert!(parse_request(&format!("old 2\nnot-base64\n\n{note}")).is_err());
    }

    #[tokio::test]
    async fn it_cosigns_one_history_refuses_another_and_remembers_after_a_restart() {
        use crate::tlog::LogKey;
        use beamd_events::merkle::{consistency_proof, leaf_hash, root};
        let dir = tempfile::tempdir().unwrap();
        let log = LogKey::from_seed("edge.test/log", [5; 32]).unwrap();
        let vkey = log.verifier().encode();
        let open =
            || Witness::open(dir.path(), Some("w.test/1"), std::slice::from_ref(&vkey)).unwrap();
        let w = open();
        let leaves: Vec<TreeHash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let mut forked = leaves.clone();
        forked[3] = leaf_hash(b"other");
        let note = |leaves: &[TreeHash]| {
            let text = Checkpoint {
                origin: "edge.test/log".into(),
                size: leaves.len() as u64,
                root: root(leaves),
            }
            .text();
            log.sign(&text)
        };
        let body = |old: usize, all: &[TreeHash]| {
            let proof = match old {
                0 => Vec::new(),
                n => consistency_proof(all, n).unwrap(),
            };
            let lines: String = proof
                .iter()
                .map(|h| format!("{}\n", B64.encode(h)))
                .collect();
            format!("old {old}\n{lines}\n{}", note(all))
        };
        let status = |answer: (StatusCode, String)| answer.0;
        assert_eq!(
            status(w.add_checkpoint(&body(0, &[])).await),
            StatusCode::OK,
            "the empty tree"
        );
        let (code, line) = w.add_checkpoint(&body(0, &leaves[..3])).await;
        assert_eq!(code, StatusCode::OK, "{line}");
        let text = note(&leaves[..3]);
        let cosigner = CosignKey::parse(
            std::fs::read_to_string(dir.path().join(KEY_FILE))
                .unwrap()
                .trim(),
        )
        .unwrap();
        assert!(cosigner
            .verifier()
            .cosigned(&format!("{text}{line}"))
            .unwrap()
            .is_some());
        assert_eq!(
            status(w.add_checkpoint(&body(3, &leaves)).await),
            StatusCode::OK
        );
        // The fork: at the same size, and from the size before.
        assert_eq!(
            status(w.add_checkpoint(&body(5, &forked)).await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            w.add_checkpoint(&body(3, &forked)).await,
            (StatusCode::CONFLICT, "5\n".into())
        );
        // Another log, and a signature by another key.
        let other = LogKey::from_seed("edge.test/other", [6; 32]).unwrap();
        let foreign = format!("old 0\n\n{}", other.sign("edge.test/other\n1\nAAAA\n"));
        assert_eq!(
            status(w.add_checkpoint(&foreign).await),
            StatusCode::NOT_FOUND
        );
        let impostor = LogKey::from_seed("edge.test/log", [7; 32]).unwrap();
        let text = note(&leaves).split("\n\n").next().unwrap().to_string() + "\n";
        let forged = format!("old 5\n\n{}", impostor.sign(&text));
        assert_eq!(
            status(w.add_checkpoint(&forged).await),
            StatusCode::FORBIDDEN
        );
        // What it holds outlives it.
        drop(w);
        let again = open();
        assert_eq!(
            again.add_checkpoint(&body(0, &leaves)).await,
            (StatusCode::CONFLICT, "5\n".into())
        );
    }
}
