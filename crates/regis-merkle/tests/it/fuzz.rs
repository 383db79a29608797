//! Fuzz harness (proptest) for everything in regis-merkle that reads
//! untrusted input: tile paths, entry bundles, and proofs with arbitrary
//! sizes, indexes and hashes. None may panic; tile paths round-trip exactly.
//!
//! CI runs the default case count; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p regis-merkle --test fuzz`.

use proptest::prelude::*;
use regis_merkle::tile::{TileKind, TilePath, parse_bundle};
use regis_merkle::{
    Edge, MemoryHashes, consistency_proof, inclusion_proof, leaf_hash, verify_consistency,
    verify_inclusion,
};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

/// Strings that look like tile paths, so mutations reach deep into the parser.
fn tile_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("tile/".to_string()),
        Just("entries/".to_string()),
        Just(".p/".to_string()),
        Just("x".to_string()),
        Just("/".to_string()),
        "[0-9]{1,4}",
        "[x0-9/.p]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn tile_paths_parse_only_canonical_text(text in prop_oneof![tile_like(), any::<String>()]) {
        if let Ok(tile) = TilePath::parse(&text) {
            prop_assert_eq!(tile.to_string(), text);
        }
    }

    #[test]
    fn tile_paths_round_trip(level in 0..=63u8, entries: bool, index: u64, width in 1..=256u16) {
        let tile = if entries {
            TilePath::entries(index, width).unwrap()
        } else {
            TilePath::hashes(level, index, width).unwrap()
        };
        prop_assert_eq!(TilePath::parse(&tile.to_string()), Ok(tile));
    }

    #[test]
    fn tiles_in_any_tree_are_consistent(level in 0..=70u8, index: u64, size: u64) {
        let kind = if level > 63 { TileKind::Entries } else { TileKind::Hashes { level } };
        if let Some(tile) = TilePath::in_tree(kind, index, size) {
            prop_assert!(tile.width() >= 1 && tile.width() <= 256);
            prop_assert_eq!(TilePath::parse(&tile.to_string()), Ok(tile));
        }
    }

    #[test]
    fn bundles_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(entries) = parse_bundle(&bytes) {
            let total: usize = entries.iter().map(|e| e.len() + 2).sum();
            prop_assert_eq!(total, bytes.len());
        }
    }

    #[test]
    fn verifiers_never_panic(
        index: u64, size: u64, old: u64,
        proof in prop::collection::vec(any::<[u8; 32]>(), 0..70),
        leaf: [u8; 32], root: [u8; 32],
    ) {
        let _ = verify_inclusion(&leaf, index, size, &proof, &root);
        let _ = verify_consistency(old, size, &proof, &leaf, &root);
        let _ = verify_inclusion(&leaf, index % size.max(1), size, &proof, &root);
        let _ = verify_consistency(old % size.max(1), size, &proof, &leaf, &root);
    }

    #[test]
    fn provers_answer_or_refuse(size in 0..300u64, index: u64, old: u64) {
        let stored = MemoryHashes::from_leaf_hashes((0..size).map(|i| leaf_hash(&i.to_le_bytes())));
        let edge = Edge::from_reader(&stored, size).unwrap();
        let index = if index % 2 == 0 { index % (size + 2) } else { index };
        let old = if old % 2 == 0 { old % (size + 2) } else { old };
        prop_assert_eq!(inclusion_proof(&stored, &edge, index).is_ok(), index < size);
        prop_assert_eq!(consistency_proof(&stored, &edge, old).is_ok(), old <= size);
    }
}
