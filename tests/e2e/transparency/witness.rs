//! Witnessed checkpoints (#32): three `beamd witness` processes cosign an
//! edge's checkpoints (C2SP tlog-witness, tlog-cosignature/v1), checked
//! here with the independent `signed_note` implementation; a fork of the
//! edge's data dir (same log key, other events) is refused by every witness
//! and never reaches a quorum, which an auditor with quorum 2 sees without
//! having saved a checkpoint before; a witness killed with SIGKILL leaves a
//! quorum of 2, and, started again, resumes from the state it stored.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::api::{tenant, Api};
use common::tunnel::{start_edge, Edge, Proc, ADMIN_TOKEN};
use common::{beamd, text};
use signed_note::{Note, VerifierList};

/// A cosignature/v1 verifier written against `signed_note`'s own note
/// parsing and key ids, with `ed25519-dalek`: nothing of beamd's.
struct Cosigner {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl Cosigner {
    fn parse(vkey: &str) -> Result<Self> {
        use base64::Engine;
        let mut parts = vkey.trim().splitn(3, '+');
        let (name, _, material) = (
            parts.next().context("name")?,
            parts.next().context("id")?,
            parts.next().context("key")?,
        );
        let bytes = base64::engine::general_purpose::STANDARD.decode(material)?;
        ensure!(
            bytes.len() == 33 && bytes[0] == 0x04,
            "a cosignature/v1 key"
        );
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes[1..].try_into()?)?;
        Ok(Self {
            name: name.to_string(),
            id: signed_note::key_id(name, &bytes),
            key,
        })
    }
}

impl signed_note::Verifier for Cosigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        // The signature after the key id: time (8 bytes, big endian), then Ed25519.
        let (Some(time), Some(signature)) = (sig.get(..8), sig.get(8..)) else {
            return false;
        };
        let time = u64::from_be_bytes(time.try_into().unwrap_or_default());
        let mut signed = format!("cosignature/v1\ntime {time}\n").into_bytes();
        signed.extend_from_slice(msg);
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| self.key.verify_strict(&signed, &s).is_ok())
    }
}

/// How many of `witnesses` validly cosigned `note`, by `signed_note`.
fn independent_cosignatures(note: &str, witnesses: &[String]) -> Result<usize> {
    let mut n = 0;
    for w in witnesses {
        let list = VerifierList::new(vec![Box::new(Cosigner::parse(w)?)]);
        let parsed = Note::from_bytes(note.as_bytes()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if parsed.verify(&list).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// A running witness: its process, address and verifier key.
struct Witness {
    proc: Proc,
    addr: String,
    vkey: String,
}

fn start_witness(dir: &Path, listen: &str, name: &str, log_vkey: &str) -> Result<Witness> {
    let log = format!(
        "{}={log_vkey}",
        log_vkey.split('+').next().context("origin")?
    );
    let proc = Proc::spawn(
        &[
            "witness",
            "--data-dir",
            dir.to_str().context("path")?,
            "--listen",
            listen,
            "--log",
            &log,
            "--name",
            name,
        ],
        &[],
    )?;
    let line = proc.expect("beamd witness: listening on", Duration::from_secs(20))?;
    let mut words = line.split(' ').skip(4);
    let addr = words.next().context("addr")?.to_string();
    let vkey = words.nth(1).context("vkey")?.to_string();
    Ok(Witness { proc, addr, vkey })
}

/// A data dir with a log key made beforehand (the witnesses must know it).
fn log_key(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    let key = beamd::tlog::LogKey::generate("edge.example/log")?;
    beamd::data_dir::write_private(&dir.join("log-signing.key"), format!("{}\n", key.encode()))?;
    Ok(key.verifier().encode())
}

fn edge_with(dir: &Path, witnesses: &[&Witness]) -> Result<Edge> {
    let mut args = vec![
        "--checkpoint-interval".to_string(),
        "100ms".into(),
        "--checkpoint-every".into(),
        "1".into(),
    ];
    for w in witnesses {
        args.push("--witness".into());
        args.push(format!("http://{}={}", w.addr, w.vkey));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_edge(dir, "tcp", "127.0.0.1:0", &args)
}

/// Waits for a served checkpoint of at least `size` events with at least
/// `n` of `witnesses`' cosignatures; returns it.
async fn witnessed(api: &Api, size: u64, witnesses: &[String], n: usize) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = api.get("/api/v1/log/checkpoint").await?;
        if got.status == 200 {
            let served: u64 = got.text.lines().nth(1).unwrap_or("0").parse()?;
            if served >= size && independent_cosignatures(&got.text, witnesses)? >= n {
                return Ok(got.text);
            }
        }
        ensure!(
            Instant::now() < deadline,
            "no checkpoint of {size} events with {n} cosignatures within 60 s: {}",
            got.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Some events: a tenant and a key each.
async fn events(api: &Api, slugs: &[&str]) -> Result<u64> {
    for slug in slugs {
        let (_, t) = tenant(api, slug).await?;
        common::api::new_token(&t, "x").await?;
    }
    let status = api.get("/api/v1/status").await?;
    status.body["logSeq"].as_u64().context("logSeq")
}

/// `beamd checkpoint` against `api` requiring `quorum` of `witnesses`.
fn audit_checkpoint(edge: &Edge, witnesses: &[String], quorum: &str) -> (bool, String) {
    let api = format!("http://{}", edge.api);
    let mut args = vec![
        "checkpoint",
        "--api",
        &api,
        "--key",
        ADMIN_TOKEN,
        "--quorum",
        quorum,
    ];
    for w in witnesses {
        args.extend(["--witness-key", w.as_str()]);
    }
    let out = beamd(&args);
    (out.status.success(), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_witnesses_cosign_refuse_a_fork_and_survive_a_kill() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (main_dir, fork_dir) = (root.path().join("edge"), root.path().join("fork"));
    let log_vkey = log_key(&main_dir)?;
    let mut ws = Vec::new();
    for i in 0..3 {
        let dir = root.path().join(format!("w{i}"));
        ws.push(start_witness(
            &dir,
            "127.0.0.1:0",
            &format!("witness.test/w{i}"),
            &log_vkey,
        )?);
    }
    let keys: Vec<String> = ws.iter().map(|w| w.vkey.clone()).collect();

    // The edge's checkpoints gather three cosignatures.
    let mut edge = edge_with(&main_dir, &ws.iter().collect::<Vec<_>>())?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let size = events(&api, &["one", "two"]).await?;
    let note = witnessed(&api, size, &keys, 3).await?;
    ensure!(
        note.matches('\u{2014}').count() == 4,
        "the log's signature and three: {note}"
    );
    let (ok, said) = audit_checkpoint(&edge, &keys, "3");
    ensure!(ok, "{said}");
    let status = api.get("/api/v1/status").await?.body;
    let reports = status["witnesses"]
        .as_array()
        .context("witnesses in /status")?;
    ensure!(
        reports.len() == 3
            && reports
                .iter()
                .all(|r| r["cosignedSize"].as_u64() >= Some(size)),
        "{status}"
    );
    let metrics = api.get("/metrics").await?.text;
    ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("beamd_witness_cosigned_size{witness=\"witness.test/w0\"}")),
        "{metrics}"
    );

    // A copy of the data dir goes on with other events: a fork of the log
    // under the same key. The real edge moves on first.
    common::tlog::stop(&mut edge).await?;
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&main_dir)
        .arg(&fork_dir)
        .status()?;
    ensure!(status.success(), "cp -a");
    let edge = edge_with(&main_dir, &ws.iter().collect::<Vec<_>>())?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let size = events(&api, &["three", "four"]).await?;
    witnessed(&api, size, &keys, 3).await?;
    let mut fork = edge_with(&fork_dir, &ws.iter().collect::<Vec<_>>())?;
    let fork_api = Api::new(fork.api, ADMIN_TOKEN);
    events(
        &fork_api,
        &["mallory-a", "mallory-b", "mallory-c", "mallory-d"],
    )
    .await?;
    // Every witness refuses it: each is reported failing, none cosigned.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = fork_api.get("/api/v1/status").await?.body;
        let reports = status["witnesses"].as_array().context("witnesses")?.clone();
        let refused = reports
            .iter()
            .all(|r| r["failures"].as_u64() >= Some(1) && r["cosignedSize"] == 0);
        if refused {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the fork was not refused by all: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fork_note = fork_api.get("/api/v1/log/checkpoint").await?.text;
    ensure!(
        independent_cosignatures(&fork_note, &keys)? == 0,
        "{fork_note}"
    );
    // An auditor who never saved a checkpoint, asking for 2 of the 3: the
    // fork's checkpoint fails, the real one passes.
    let (ok, said) = audit_checkpoint(&fork, &keys, "2");
    ensure!(!ok && said.contains("0 of the 3"), "{said}");
    let (ok, said) = audit_checkpoint(&edge, &keys, "2");
    ensure!(ok, "{said}");
    // An inclusion proof's bundle carries its checkpoint's cosignatures:
    // `verify-proof` with a quorum takes the real edge's, not the fork's.
    let quorum_args: Vec<&str> = keys
        .iter()
        .flat_map(|k| ["--witness-key", k.as_str()])
        .chain(["--quorum", "2"])
        .collect();
    for (which, api, witnessed) in [("real", &api, true), ("fork", &fork_api, false)] {
        let bundle = api.get("/api/v1/log/proof/inclusion?seq=1").await?;
        ensure!(bundle.status == 200, "{}", bundle.text);
        let file = root.path().join(format!("{which}.json"));
        std::fs::write(&file, &bundle.text)?;
        let mut args = vec![
            "verify-proof",
            file.to_str().context("path")?,
            "--public-key",
            &log_vkey,
        ];
        args.extend(&quorum_args);
        let out = beamd(&args);
        ensure!(
            out.status.success() == witnessed,
            "{which}: {} {}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // The real checkpoint, saved with its cosignatures: the fork's data dir
    // does not extend it, and `audit --since` with a quorum says so.
    let saved = root.path().join("saved");
    let real = format!("http://{}", edge.api);
    let mut args = vec![
        "checkpoint",
        "--api",
        &real,
        "--key",
        ADMIN_TOKEN,
        "--save",
        saved.to_str().context("path")?,
    ];
    args.extend(&quorum_args);
    let out = beamd(&args);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    common::tlog::stop(&mut fork).await?;
    let mut args = vec![
        "audit",
        "--data-dir",
        fork_dir.to_str().context("path")?,
        "--since",
        saved.to_str().context("path")?,
    ];
    args.extend(&quorum_args);
    let out = beamd(&args);
    ensure!(
        !out.status.success() && text(&out.stderr).contains("does NOT extend"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // One witness killed: quorum 2 is still reached on newer checkpoints.
    let dead_addr = ws[2].addr.clone();
    ws[2].proc.signal(rustix::process::Signal::KILL)?;
    ensure!(
        ws[2].proc.exited_within(Duration::from_secs(10)).await?,
        "killed"
    );
    let before = size;
    let size = events(&api, &["five"]).await?;
    let note = witnessed(&api, size, &keys[..2], 2).await?;
    ensure!(
        independent_cosignatures(&note, &keys[2..])? == 0,
        "the dead witness cosigned"
    );
    // Started again on its port, it resumes from its stored state: it
    // holds the size it cosigned before the kill, not 0.
    let again = start_witness(
        &root.path().join("w2"),
        &dead_addr,
        "witness.test/w2",
        &log_vkey,
    )?;
    ensure!(again.vkey == keys[2], "the same key");
    let held = ask_size(&again.addr, &note).await?;
    ensure!(
        held >= before && held < size,
        "it holds {held} (cosigned {before} before the kill)"
    );
    let size = events(&api, &["six"]).await?;
    witnessed(&api, size, &keys, 3).await?;
    Ok(())
}

/// What a witness holds for the log: its 409 answer to `old 0`.
async fn ask_size(addr: &str, note: &str) -> Result<u64> {
    let body = tempfile::NamedTempFile::new()?;
    std::fs::write(body.path(), format!("old 0\n\n{}", log_part(note)))?;
    let out = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--data-binary"])
        .arg(format!("@{}", body.path().display()))
        .arg(format!("http://{addr}/add-checkpoint"))
        .output()?;
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    let (size, code) = answer.trim().rsplit_once('\n').context("an answer")?;
    ensure!(code == "409", "{answer}");
    Ok(size.trim().parse()?)
}

/// The note with the log's signature only (cosignatures dropped).
fn log_part(note: &str) -> String {
    let (text, sigs) = note.split_once("\n\n").unwrap_or((note, ""));
    let first = sigs.lines().next().unwrap_or("");
    format!("{text}\n\n{first}\n")
}

#[test]
fn bad_witness_settings_are_one_line_and_a_failure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().join("w");
    let d = d.to_str().context("path")?;
    let log = log_key(&dir.path().join("edge"))?;
    let cases: [(&[&str], &str); 3] = [
        (
            &["--log", &log],
            "has no witness key yet: name the witness with --name",
        ),
        (
            &["--log", "x", "--name", "w.test/1"],
            "--log x: not a log's verifier key",
        ),
        (
            &[
                "--log",
                &format!("other.example/log={log}"),
                "--name",
                "w.test/1",
            ],
            "not \"other.example/log\"'s",
        ),
    ];
    for (extra, wanted) in cases {
        let mut args = vec!["witness", "--data-dir", d, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = beamd(&args);
        let err = text(&out.stderr);
        ensure!(
            !out.status.success() && err.trim().lines().count() == 1 && err.contains(wanted),
            "{extra:?}: {err}"
        );
        ensure!(
            !Path::new(d).join("witness.key").exists(),
            "{extra:?} made a key"
        );
    }
    // A checkpoint wanted with a quorum of more keys than given.
    let out = beamd(&[
        "checkpoint",
        "--api",
        "http://127.0.0.1:9",
        "--witness-key",
        "w.test/1+873ca9a2+BDs1zmExLRYdTtUI4KFrJU73v7oYpQ8g38JHRMBXqU5A",
        "--quorum",
        "2",
    ]);
    let err = text(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("--quorum 2 is more than the 1 witness keys given"),
        "{err}"
    );
    Ok(())
}
