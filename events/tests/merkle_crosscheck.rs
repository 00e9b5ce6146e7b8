//! beamd's RFC 6962 tree against an independent implementation (the
//! `ct-merkle` crate), for every tree size from 1 to 1,000: the same roots,
//! byte-identical inclusion and consistency proofs, each accepted by the
//! other implementation's verifier, and beamd's verifiers refusing a
//! tampered proof.

use beamd_events::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    CompactTree, TreeHash,
};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

fn flat(proof: &[TreeHash]) -> Vec<u8> {
    proof.concat()
}

/// A few positions of interest in a tree of `n`: the ends, the middle, around a power of two.
fn samples(n: usize) -> Vec<usize> {
    let p = n.next_power_of_two() / 2;
    let mut s = vec![0, n / 2, n - 1, p.saturating_sub(1), p.min(n - 1)];
    s.sort_unstable();
    s.dedup();
    s
}

#[test]
fn roots_and_proofs_match_an_independent_implementation() {
    let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    let mut ours: Vec<TreeHash> = Vec::new();
    let mut compact = CompactTree::default();
    let mut old_roots: Vec<TreeHash> = Vec::new();
    for n in 1..=1000usize {
        let record = format!("event {n}: stored bytes").into_bytes();
        theirs.push(record.clone());
        ours.push(leaf_hash(&record));
        compact.push(leaf_hash(&record));
        let head = root(&ours);
        let their_root = theirs.root();
        assert_eq!(
            their_root.as_bytes().as_slice(),
            head.as_slice(),
            "root of {n}"
        );
        assert_eq!(compact.root(), head, "compact root of {n}");
        for i in samples(n) {
            let proof = inclusion_proof(&ours, i).expect("in range");
            let their_proof = theirs.prove_inclusion(i);
            assert_eq!(
                their_proof.as_bytes(),
                flat(&proof).as_slice(),
                "path {i} of {n}"
            );
            let ours_for_them = InclusionProof::<Sha256>::from_bytes(flat(&proof));
            let leaf = theirs.get(i).expect("leaf");
            assert!(their_root
                .verify_inclusion(leaf, i as u64, &ours_for_them)
                .is_ok());
            assert!(verify_inclusion(
                &ours[i], i as u64, n as u64, &proof, &head
            ));
            let mut bad = proof.clone();
            if let Some(first) = bad.first_mut() {
                first[0] ^= 1;
                assert!(!verify_inclusion(&ours[i], i as u64, n as u64, &bad, &head));
            }
        }
        for m in samples(n).into_iter().filter(|m| *m >= 1 && *m < n) {
            let proof = consistency_proof(&ours, m).expect("in range");
            let their_proof = theirs.prove_consistency(n - m);
            assert_eq!(
                their_proof.as_bytes(),
                flat(&proof).as_slice(),
                "{m} -> {n}"
            );
            let old = old_roots[m - 1];
            let their_old = RootHash::<Sha256>::new(old.into(), m as u64);
            let ours_for_them =
                ConsistencyProof::<Sha256>::try_from_bytes(flat(&proof)).expect("well formed");
            assert!(their_root
                .verify_consistency(&their_old, &ours_for_them)
                .is_ok());
            assert!(verify_consistency(m as u64, n as u64, &old, &head, &proof));
            assert!(!verify_consistency(m as u64, n as u64, &head, &old, &proof));
        }
        old_roots.push(head);
    }
}
