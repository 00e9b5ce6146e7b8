//! Tile paths, the spec's example and resuming a stored tree.
use super::*;
use crate::merkle::leaf_hash;

#[test]
fn paths_follow_the_layout() {
    let t = |level, index, width| TileId {
        level,
        index,
        width,
    };
    assert_eq!(t(0, 0, 256).path(), "tile/0/000");
    assert_eq!(t(0, 1_234_067, 256).path(), "tile/0/x001/x234/067");
    assert_eq!(t(2, 5, 17).path(), "tile/2/005.p/17");
    assert_eq!(t(1, 1000, 256).path(), "tile/1/x001/000");
    for id in [
        t(0, 0, 256),
        t(3, 1_234_067, 9),
        t(1, 999, 255),
        t(0, 1000, 1),
    ] {
        let path = id.path();
        assert_eq!(TileId::parse(&path["tile/".len()..]), Ok(id), "{path}");
    }
    for bad in [
        "",
        "0",
        "01/000",
        "0/1",
        "0/x001",
        "0/001/002",
        "0/000.p/0",
        "0/000.p/256",
        "64/000",
        "0/000.p/x",
    ] {
        assert!(TileId::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn the_spec_example_of_70000_leaves() {
    let tiles = tiles_for(70_000);
    let level = |l| tiles.iter().filter(|t| t.level == l).collect::<Vec<_>>();
    assert_eq!(level(0).len(), 274);
    assert_eq!(level(0).last().map(|t| t.width), Some(112));
    assert_eq!(level(1).len(), 2);
    assert_eq!(level(1).last().map(|t| t.width), Some(17));
    assert_eq!(level(2).len(), 1);
    assert_eq!(level(2)[0].width, 1);
    assert_eq!(tiles_for(256).len(), 2);
}

#[test]
fn resuming_gives_the_same_tiles_as_growing_on() {
    let leaves: Vec<TreeHash> = (0..70_000u32)
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect();
    let mut whole = TileBuilder::default();
    let mut stored = std::collections::BTreeMap::new();
    for (i, leaf) in leaves.iter().enumerate() {
        whole.push(*leaf);
        if i % 9_999 == 0 {
            for (id, bytes) in whole.take_changed() {
                stored.insert((id.level, id.index), (id, bytes));
            }
        }
    }
    for (id, bytes) in whole.take_changed() {
        stored.insert((id.level, id.index), (id, bytes));
    }
    let got: Vec<TileId> = stored.values().map(|(id, _)| *id).collect();
    let mut want = tiles_for(70_000);
    want.sort_by_key(|t| (t.level, t.index));
    assert_eq!(got, want);
    // Level 1 hash i is the root of level-0 tile i.
    let (_, l1) = &stored[&(1, 0)];
    assert_eq!(&l1[..32], root(&leaves[..256]).as_slice());
    let partial = partial_tiles(40_000)
        .into_iter()
        .map(|id| {
            let first = id.index * 256;
            let per = 256u64.pow(id.level.into());
            let hs = (first..first + u64::from(id.width))
                .map(|j| root(&leaves[(j * per) as usize..((j + 1) * per) as usize]))
                .collect();
            (id, hs)
        })
        .collect();
    let mut resumed = TileBuilder::resume(40_000, partial).unwrap();
    let mut grown = TileBuilder::default();
    for leaf in &leaves[..40_000] {
        grown.push(*leaf);
    }
    grown.take_changed();
    for leaf in &leaves[40_000..] {
        resumed.push(*leaf);
        grown.push(*leaf);
    }
    assert_eq!(resumed.take_changed(), grown.take_changed());
}
