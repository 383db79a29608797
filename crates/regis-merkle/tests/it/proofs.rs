//! Property tests: over one stored tree of 100,000 leaves, every proof made
//! for any prefix size verifies, and every single-bit mutation of anything it
//! is checked against (leaf, roots, each proof hash, the leaf index) fails.

use std::sync::OnceLock;

use proptest::prelude::*;
use regis_merkle::{
    Edge, Frontier, Hash, HashReader, MemoryHashes, consistency_proof, consistency_proof_len,
    inclusion_proof, inclusion_proof_len, leaf_hash, root_of, verify_consistency, verify_inclusion,
};

const MAX_SIZE: u64 = 100_000;

fn stored() -> &'static MemoryHashes {
    static TREE: OnceLock<MemoryHashes> = OnceLock::new();
    TREE.get_or_init(|| {
        MemoryHashes::from_leaf_hashes((0..MAX_SIZE).map(|i| leaf_hash(&i.to_be_bytes())))
    })
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut hash = *hash;
    hash[bit / 8 % 32] ^= 1 << (bit % 8);
    hash
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn inclusion_proofs_verify_and_mutants_fail(
        size in 1..=MAX_SIZE,
        index_seed in any::<u64>(),
        bit in 0..256usize,
    ) {
        let index = index_seed % size;
        let tree = stored();
        let edge = Edge::from_reader(tree, size).unwrap();
        let root = edge.root();
        let leaf = tree.read_hash(0, index).unwrap();
        let proof = inclusion_proof(tree, &edge, index).unwrap();
        prop_assert_eq!(proof.len(), inclusion_proof_len(index, size));
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

        prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
        }
        // A different position is a different path through the tree. (The
        // size is not bound by an inclusion proof: the signed checkpoint binds
        // it to the root.)
        for b in 0..64 {
            let other = index ^ (1 << b);
            prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
        if let Some((_, shorter)) = proof.split_last() {
            prop_assert!(verify_inclusion(&leaf, index, size, shorter, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_mutants_fail(
        size in 1..=MAX_SIZE,
        old_seed in any::<u64>(),
        bit in 0..256usize,
    ) {
        let old = 1 + old_seed % size;
        let tree = stored();
        let edge = Edge::from_reader(tree, size).unwrap();
        let old_root = Edge::from_reader(tree, old).unwrap().root();
        let root = edge.root();
        let proof = consistency_proof(tree, &edge, old).unwrap();
        prop_assert_eq!(proof.len(), consistency_proof_len(old, size));
        prop_assert!(verify_consistency(old, size, &proof, &old_root, &root).is_ok());

        prop_assert!(verify_consistency(old, size, &proof, &flip(&old_root, bit), &root).is_err());
        prop_assert!(verify_consistency(old, size, &proof, &old_root, &flip(&root, bit)).is_err());
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(old, size, &bad, &old_root, &root).is_err());
        }
    }

    /// The incremental tree, the stored-hash edge and a from-scratch fold agree.
    #[test]
    fn roots_agree(size in 0..2_000u64) {
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut frontier = Frontier::new();
        for leaf in &leaves {
            frontier.push_hash(*leaf, |_, _, _| {}).unwrap();
        }
        let stored = MemoryHashes::from_leaf_hashes(leaves.iter().copied());
        prop_assert_eq!(frontier.root(), root_of(&leaves));
        prop_assert_eq!(Edge::from_reader(&stored, size).unwrap().root(), frontier.root());
        prop_assert_eq!(naive_root(&leaves), frontier.root());
    }
}

/// RFC 6962 §2.1 MTH, written as the recursion it is.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => regis_merkle::EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            regis_merkle::node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

#[test]
fn proofs_beyond_the_tree_are_refused() {
    let tree = stored();
    let edge = Edge::from_reader(tree, 10).unwrap();
    assert!(inclusion_proof(tree, &edge, 10).is_err());
    assert!(consistency_proof(tree, &edge, 11).is_err());
    assert!(verify_inclusion(&[0; 32], 10, 10, &[], &[0; 32]).is_err());
    assert!(verify_consistency(11, 10, &[], &[0; 32], &[0; 32]).is_err());
}
