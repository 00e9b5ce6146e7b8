//! beamd's stored tiles against an independent tlog implementation (the
//! `tlog_tiles` crate, a port of Go's sumdb `tlog`), for every tree size
//! from 1 to 1,000: byte-identical tiles at the same paths, the same roots,
//! and inclusion and consistency proofs computed by the other side from
//! beamd's tiles identical to beamd's own and accepted by its verifier.

use std::cell::RefCell;

use beamd_events::merkle::{leaf_hash, prove_consistency, prove_inclusion, TreeHash};
use beamd_events::tiles::{tiles_for, SledTiles, TileBuilder, TileId};
use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, stored_hashes, tree_hash, Hash, HashReader,
    Tile, TileHashReader, TileReader,
};

/// Their in-memory tree: every stored hash, by stored-hash index.
struct Memory(RefCell<Vec<Hash>>);

impl HashReader for Memory {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let all = self.0.borrow();
        Ok(indexes.iter().map(|i| all[*i as usize]).collect())
    }
}

/// beamd's tiles as their tile reader sees them.
struct Ours<'a>(&'a SledTiles);

impl TileReader for Ours<'_> {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let bytes = self
                    .0
                    .tile(t.level(), t.level_index())
                    .expect("sled")
                    .ok_or(tlog_tiles::Error::InvalidTile)?;
                let want = t.width() as usize * 32;
                bytes
                    .get(..want)
                    .map(<[u8]>::to_vec)
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

fn theirs(h: &[TreeHash]) -> Vec<Hash> {
    h.iter().map(|h| Hash(*h)).collect()
}

fn samples(n: u64) -> Vec<u64> {
    let p = n.next_power_of_two() / 2;
    let mut s = vec![
        0,
        n / 2,
        n - 1,
        p.saturating_sub(1),
        p.min(n - 1),
        n.saturating_sub(257),
    ];
    s.sort_unstable();
    s.dedup();
    s
}

#[test]
fn tiles_and_proofs_match_an_independent_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let tiles = SledTiles::open(&db).unwrap();
    let mut builder = TileBuilder::default();
    let memory = Memory(RefCell::new(Vec::new()));
    let mut roots = vec![[0u8; 32]];
    for n in 1..=1000u64 {
        let record = format!("event {n}: stored bytes").into_bytes();
        let new = stored_hashes(n - 1, &record, &memory).unwrap();
        memory.0.borrow_mut().extend(new);
        builder.push(leaf_hash(&record));
        tiles.write(builder.take_changed(), builder.size()).unwrap();

        let their_root = tree_hash(n, &memory).unwrap();
        assert_eq!(tiles.root(n).unwrap(), their_root.0, "root of {n}");
        roots.push(their_root.0);

        for id in tiles_for(n) {
            let tile = Tile::new(8, id.level, id.index, u32::from(id.width), false);
            assert_eq!(
                tile.path().replacen("tile/8/", "tile/", 1),
                id.path(),
                "path of {id}"
            );
            let stored = tiles.tile(id.level, id.index).unwrap().unwrap();
            let width = usize::from(id.width) * 32;
            assert_eq!(
                &stored[..width],
                tile.read_data(&memory).unwrap().as_slice(),
                "tile {id} of {n}"
            );
            assert_eq!(TileId::parse(&id.path()["tile/".len()..]), Ok(id));
        }

        let reader = Ours(&tiles);
        let from_tiles = TileHashReader::new(n, their_root, &reader);
        for i in samples(n) {
            let ours = prove_inclusion(&tiles, n, i).unwrap().unwrap();
            let theirs_proof = prove_record(n, i, &from_tiles).unwrap();
            assert_eq!(theirs(&ours), theirs_proof, "inclusion of {i} in {n}");
            let leaf = Hash(tiles.leaf(i).unwrap());
            assert!(check_record(&theirs(&ours), n, their_root, i, leaf).is_ok());
        }
        for m in samples(n).into_iter().map(|m| m + 1) {
            let ours = prove_consistency(&tiles, m, n).unwrap().unwrap();
            let theirs_proof = prove_tree(n, m, &from_tiles).unwrap();
            assert_eq!(theirs(&ours), theirs_proof, "consistency {m} to {n}");
            let old = Hash(roots[m as usize]);
            assert!(check_tree(&theirs(&ours), n, their_root, m, old).is_ok());
            if m < n {
                let wrong = Hash(roots[(m - 1) as usize]);
                assert!(check_tree(&theirs(&ours), n, their_root, m, wrong).is_err());
            }
        }
    }
}
