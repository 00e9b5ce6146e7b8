//! The transparency log end to end, over a real edge and real HTTP: the
//! signed checkpoint verified by an independent signed-note implementation,
//! the tiles read by an independent tlog client (`tlog_tiles`) that checks
//! them against the checkpoint, inclusion proofs (a tenant's own events only)
//! and consistency proofs checked by it too, `beamd verify-proof` offline,
//! and clear errors for bad input.

mod attack;
mod upkeep;
mod witness;

use crate::common;

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::envelope::decode_record;
use beamd_events::tiles::tiles_for;
use common::api::{tenant, Api};
use common::tunnel::{start_edge, ADMIN_TOKEN};
use common::{beamd, text};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, tree_hash, Checkpoint, Hash, Tile,
    TileHashReader, TileReader,
};

/// Tiles fetched over the API, served to the independent client.
struct Fetched(HashMap<(u8, u64), Vec<u8>>);

impl TileReader for Fetched {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let bytes = self
                    .0
                    .get(&(t.level(), t.level_index()))
                    .ok_or(tlog_tiles::Error::InvalidTile)?;
                bytes
                    .get(..t.width() as usize * 32)
                    .map(<[u8]>::to_vec)
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// The checkpoint as the independent implementations read it.
async fn checkpoint(api: &Api, vkey: &str) -> Result<(String, Checkpoint)> {
    let got = api.get("/api/v1/log/checkpoint").await?;
    ensure!(got.status == 200, "checkpoint: {}", got.text);
    let verifier = StandardVerifier::new(vkey).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let note = Note::from_bytes(got.text.as_bytes()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let list = VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list)
        .map_err(|e| anyhow::anyhow!("the checkpoint does not verify: {e:?}"))?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((got.text, cp))
}

/// The first checkpoint of at least `size` events (signed within 30 s).
async fn checkpoint_of(api: &Api, vkey: &str, size: u64) -> Result<(String, Checkpoint)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        // 503 until the keeper (a thread of its own) signed its first checkpoint.
        let served = match common::tlog::not_signed_yet(api).await? {
            true => 0,
            false => {
                let (note, cp) = checkpoint(api, vkey).await?;
                if cp.size() >= size {
                    return Ok((note, cp));
                }
                cp.size()
            }
        };
        ensure!(
            std::time::Instant::now() < deadline,
            "no checkpoint of {size} events within 30 s: {served}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn fetch_tiles(api: &Api, size: u64) -> Result<Fetched> {
    let mut map = HashMap::new();
    for id in tiles_for(size) {
        let got = api.get(&format!("/api/v1/log/{}", id.path())).await?;
        ensure!(got.status == 200, "{id}: {}", got.text);
        ensure!(got.raw.len() == usize::from(id.width) * 32, "{id} width");
        map.insert((id.level, id.index), got.raw.to_vec());
    }
    Ok(Fetched(map))
}

fn hashes(v: &serde_json::Value) -> Result<Vec<Hash>> {
    v.as_array()
        .context("proof")?
        .iter()
        .map(|h| {
            let b = B64.decode(h.as_str().context("hash")?)?;
            Ok(Hash(b.try_into().map_err(|_| anyhow::anyhow!("32 bytes"))?))
        })
        .collect()
}

#[tokio::test]
async fn checkpoints_tiles_and_proofs_check_out_with_independent_implementations() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--checkpoint-interval", "200ms", "--checkpoint-every", "4"],
    )?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let vkey = admin.get("/api/v1/log/key").await?.text.trim().to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log-signing.pub"))?.trim(),
        vkey
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("log-signing.key"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    let (_, first) = checkpoint_of(&admin, &vkey, 1).await?;

    let (a_id, a) = tenant(&admin, "acme").await?;
    let (b_id, b) = tenant(&admin, "bravo").await?;
    for i in 0..3 {
        common::api::new_token(&a, &format!("a{i}")).await?;
        common::api::new_token(&b, &format!("b{i}")).await?;
    }
    // Wait for a checkpoint covering everything so far.
    let (note, cp) = checkpoint_of(&admin, &vkey, first.size() + 10).await?;
    let size = cp.size();

    // The independent client checks every tile against the signed root.
    let fetched = fetch_tiles(&admin, size).await?;
    let reader = TileHashReader::new(size, *cp.hash(), &fetched);
    assert_eq!(tree_hash(size, &reader)?, *cp.hash());

    // Inclusion: A gets its own events and only those; the proofs check out.
    let (mut mine, mut theirs) = (0, 0);
    for seq in 1..=size {
        // At the checkpoint's size: a heartbeat may sign a newer one meanwhile.
        let by_admin = admin
            .get(&format!(
                "/api/v1/log/proof/inclusion?seq={seq}&size={size}"
            ))
            .await?;
        ensure!(by_admin.status == 200, "{}", by_admin.text);
        let record = B64.decode(by_admin.body["record"].as_str().context("record")?)?;
        let proof = hashes(&by_admin.body["proof"])?;
        assert_eq!(proof, prove_record(size, seq - 1, &reader)?, "seq {seq}");
        let leaf = tlog_tiles::record_hash(&record);
        check_record(&proof, size, *cp.hash(), seq - 1, leaf)
            .map_err(|e| anyhow::anyhow!("seq {seq}: {e:?}"))?;
        assert_eq!(by_admin.body["checkpoint"].as_str(), Some(note.as_str()));
        let env = decode_record(seq, &record)?;
        let by_a = a
            .get(&format!(
                "/api/v1/log/proof/inclusion?seq={seq}&size={size}"
            ))
            .await?;
        let owner = match &env.event {
            beamd_events::Event::KeyIssued(k) => Some(k.tenant.clone()),
            beamd_events::Event::TenantCreated(_) => Some(env.stream.to_string()),
            _ => None,
        };
        if owner.as_deref() == Some(a_id.as_str()) {
            assert_eq!(by_a.status, 200, "A's own event {seq}: {}", by_a.text);
            assert_eq!(by_a.body["record"], by_admin.body["record"]);
            mine += 1;
        } else if owner.as_deref() == Some(b_id.as_str()) {
            assert_eq!(
                by_a.status, 404,
                "B's event {seq} shown to A: {}",
                by_a.text
            );
            theirs += 1;
        }
    }
    assert!(mine >= 4 && theirs >= 4, "mine {mine}, theirs {theirs}");

    // Consistency from the first checkpoint to this one.
    let got = a
        .get(&format!(
            "/api/v1/log/proof/consistency?from={}&to={size}",
            first.size()
        ))
        .await?;
    ensure!(got.status == 200, "{}", got.text);
    let proof = hashes(&got.body["proof"])?;
    assert_eq!(proof, prove_tree(size, first.size(), &reader)?);
    check_tree(&proof, size, *cp.hash(), first.size(), *first.hash())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // verify-proof offline, then with a tampered record and a foreign key.
    let seq = size / 2;
    let bundle = admin
        .get(&format!("/api/v1/log/proof/inclusion?seq={seq}"))
        .await?
        .text;
    let work = tempfile::tempdir()?;
    let file = work.path().join("proof.json");
    std::fs::write(&file, &bundle)?;
    let f = file.to_str().context("path")?;
    let ok = beamd(&["verify-proof", f, "--public-key", &vkey]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains(&format!("verified: event {seq} (")));
    let mut v: serde_json::Value = serde_json::from_str(&bundle)?;
    let mut record = B64.decode(v["record"].as_str().context("record")?)?;
    let last = record.len() - 1;
    record[last] ^= 1;
    v["record"] = B64.encode(&record).into();
    std::fs::write(&file, v.to_string())?;
    let bad = beamd(&["verify-proof", f, "--public-key", &vkey]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("FAILED"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::write(&file, &bundle)?;
    let other = beamd::tlog::LogKey::from_seed("other.example/log", [3; 32])?
        .verifier()
        .encode();
    let foreign = beamd(&["verify-proof", f, "--public-key", &other]);
    assert!(!foreign.status.success());
    assert_eq!(
        text(&foreign.stderr).lines().count(),
        1,
        "{}",
        text(&foreign.stderr)
    );

    // Bad input: JSON errors.
    for (path, status) in [
        ("/api/v1/log/proof/inclusion?seq=abc", 400),
        ("/api/v1/log/proof/inclusion", 400),
        ("/api/v1/log/proof/inclusion?seq=0", 404),
        (
            &*format!("/api/v1/log/proof/inclusion?seq={}", size + 1000),
            404,
        ),
        (
            &*format!("/api/v1/log/proof/inclusion?seq=1&size={}", u64::MAX),
            400,
        ),
        // A proof or tile the tree does not have is not found.
        ("/api/v1/log/proof/consistency?from=0", 404),
        (
            &*format!("/api/v1/log/proof/consistency?from={}&to=2", size),
            404,
        ),
        ("/api/v1/log/tile/0/12", 404),
        ("/api/v1/log/tile/0/x000.p/300", 404),
        ("/api/v1/log/tile/5/000", 404),
        ("/api/v1/log/tile/entries/000", 404),
    ] {
        let got = admin.get(path).await?;
        assert_eq!(got.status, status, "{path}: {}", got.text);
        assert!(got.body["error"].is_string(), "{path}: {}", got.text);
    }
    let anonymous =
        common::api::call(edge.api, "GET", "/api/v1/log/checkpoint", None, None, &[]).await?;
    assert_eq!(anonymous.status, 401);

    // The routes are in the OpenAPI document.
    let doc = admin.get("/api/v1/openapi.json").await?;
    for route in [
        "checkpoint",
        "key",
        "proof/inclusion",
        "proof/consistency",
        "tile/{path}",
    ] {
        let path = format!("/api/v1/log/{route}");
        assert!(
            doc.body["paths"][&path].is_object(),
            "{path} not documented"
        );
    }
    Ok(())
}
