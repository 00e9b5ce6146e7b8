//! The RFC 6962 Merkle tree over the log's stored events (SHA-256; leaf =
//! H(0x00 || stored event bytes), node = H(0x01 || left || right)): tree
//! heads, inclusion and consistency proofs and their verification, as
//! Certificate Transparency and the C2SP transparency-log formats define
//! them, so that existing verifiers read what beamd proves.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type TreeHash = [u8; 32];

/// The hash of a leaf: H(0x00 || bytes).
pub fn leaf_hash(bytes: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// The hash of an interior node: H(0x01 || left || right).
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: H("").
pub fn empty_root() -> TreeHash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    n.next_power_of_two() / 2
}

/// Where the hashes of perfect subtrees come from: a slice of leaf hashes in
/// memory, or the stored tiles. Proofs are built from these alone.
pub trait Subtrees {
    /// Why a hash could not be read.
    type Error;
    /// MTH(D[index * 2^height .. (index + 1) * 2^height]), for a subtree
    /// entirely within the tree.
    fn perfect(&self, height: u32, index: u64) -> Result<TreeHash, Self::Error>;
}

impl Subtrees for [TreeHash] {
    type Error = std::convert::Infallible;
    fn perfect(&self, height: u32, index: u64) -> Result<TreeHash, Self::Error> {
        let lo = (index << height) as usize;
        Ok(root(&self[lo..lo + (1usize << height)]))
    }
}

/// MTH(D[lo..hi]) for a range the RFC 6962 recursion produces (`lo` a
/// multiple of the largest power of two not above `hi - lo`).
pub fn range_root<S: Subtrees + ?Sized>(s: &S, lo: u64, hi: u64) -> Result<TreeHash, S::Error> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() {
        let height = n.trailing_zeros();
        return s.perfect(height, lo >> height);
    }
    let k = split(n);
    Ok(node_hash(
        &range_root(s, lo, lo + k)?,
        &range_root(s, lo + k, hi)?,
    ))
}

/// The Merkle Tree Hash of `leaves` (leaf hashes), RFC 6962 §2.1.
pub fn root(leaves: &[TreeHash]) -> TreeHash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves`, RFC 6962 §2.1.1.
/// `None` when `index` is outside the tree.
pub fn inclusion_proof(leaves: &[TreeHash], index: usize) -> Option<Vec<TreeHash>> {
    let Ok(p) = prove_inclusion(leaves, leaves.len() as u64, index as u64);
    p
}

/// The audit path of leaf `index` in the tree of the first `size` leaves of
/// `s`; `None` when `index >= size`.
pub fn prove_inclusion<S: Subtrees + ?Sized>(
    s: &S,
    size: u64,
    index: u64,
) -> Result<Option<Vec<TreeHash>>, S::Error> {
    if index >= size {
        return Ok(None);
    }
    let mut out = Vec::new();
    path(s, index, 0, size, &mut out)?;
    Ok(Some(out))
}

fn path<S: Subtrees + ?Sized>(
    s: &S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<TreeHash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(s, m, lo, lo + k, out)?;
        out.push(range_root(s, lo + k, hi)?);
    } else {
        path(s, m - k, lo + k, hi, out)?;
        out.push(range_root(s, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof that the first `old_size` leaves are a prefix of
/// `leaves`, RFC 6962 §2.1.2. `None` unless 0 < old_size <= leaves.len().
pub fn consistency_proof(leaves: &[TreeHash], old_size: usize) -> Option<Vec<TreeHash>> {
    let Ok(p) = prove_consistency(leaves, old_size as u64, leaves.len() as u64);
    p
}

/// The consistency proof from the tree of `old_size` leaves to the tree of
/// `new_size` leaves of `s`; `None` unless 0 < old_size <= new_size.
pub fn prove_consistency<S: Subtrees + ?Sized>(
    s: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Option<Vec<TreeHash>>, S::Error> {
    if old_size == 0 || old_size > new_size {
        return Ok(None);
    }
    let mut out = Vec::new();
    subproof(s, old_size, 0, new_size, true, &mut out)?;
    Ok(Some(out))
}

fn subproof<S: Subtrees + ?Sized>(
    s: &S,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<TreeHash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_root(s, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(s, m, lo, lo + k, whole, out)?;
        out.push(range_root(s, lo + k, hi)?);
    } else {
        subproof(s, m - k, lo + k, hi, false, out)?;
        out.push(range_root(s, lo, lo + k)?);
    }
    Ok(())
}

/// Whether `proof` shows leaf `leaf` at `index` in the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &TreeHash,
    index: u64,
    size: u64,
    proof: &[TreeHash],
    root: &TreeHash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Whether `proof` shows the tree of `old_size` leaves with root `old_root`
/// to be a prefix of the tree of `new_size` leaves with root `new_root`
/// (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &TreeHash,
    new_root: &TreeHash,
    proof: &[TreeHash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut proof: Vec<TreeHash> = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// A tree grown one leaf at a time, holding only the roots of its perfect
/// subtrees (O(log n) memory): the tree head of a log read once, in order.
#[derive(Debug, Clone, Default)]
pub struct CompactTree {
    size: u64,
    /// Roots of the perfect subtrees, largest first.
    peaks: Vec<TreeHash>,
}

impl CompactTree {
    /// Appends a leaf (its hash).
    pub fn push(&mut self, leaf: TreeHash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Each trailing 1 bit of the old size is a peak of the same height: merge.
        while size & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root (the empty tree's for no leaves).
    pub fn root(&self) -> TreeHash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<TreeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn compact_tree_matches_the_recursive_root() {
        let all = leaves(300);
        let mut tree = CompactTree::default();
        assert_eq!(tree.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf);
            assert_eq!(tree.root(), root(&all[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn proofs_verify_and_tampering_does_not() {
        let all = leaves(37);
        let head = root(&all);
        for i in 0..all.len() {
            let p = inclusion_proof(&all, i).unwrap();
            assert!(verify_inclusion(&all[i], i as u64, 37, &p, &head));
            assert!(!verify_inclusion(
                &all[(i + 1) % 37],
                i as u64,
                37,
                &p,
                &head
            ));
        }
        for m in 1..=all.len() {
            let p = consistency_proof(&all, m).unwrap();
            let old = root(&all[..m]);
            assert!(verify_consistency(m as u64, 37, &old, &head, &p), "m {m}");
            let wrong = root(&all[1..m.max(2)]);
            assert!(m == 37 || !verify_consistency(m as u64, 37, &wrong, &head, &p));
        }
        assert!(inclusion_proof(&all, 37).is_none());
        assert!(consistency_proof(&all, 0).is_none());
    }
}
