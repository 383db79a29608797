//! TileHashReader: hashes read from untrusted tiles equal the stored ones
//! when the tiles are honest, and a tampered, truncated or foreign tile is
//! refused, never passed on.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;
use regis_merkle::tile::{TilePath, read_tile};
use regis_merkle::{
    Edge, HashReader, MemoryHashes, TileHashReader, TileSource, TileVerifyError, inclusion_proof,
    leaf_hash, verify_inclusion,
};

/// Serves a tree's tiles from its stored hashes, optionally flipping one bit
/// of one tile, and records what was fetched.
struct Served<'a> {
    stored: &'a MemoryHashes,
    tamper: Option<(TilePath, usize)>,
    fetched: Cell<usize>,
}

impl TileSource for Served<'_> {
    type Error = String;
    fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, String> {
        self.fetched.set(self.fetched.get() + 1);
        let mut bytes = read_tile(self.stored, tile).map_err(|e| e.to_string())?;
        if let Some((_, bit)) = self.tamper.filter(|(bad, _)| bad == tile) {
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(bytes)
    }
}

const MAX_SIZE: u64 = 140_000;

/// One stored tree serves every smaller size too: stored hashes never
/// change as a tree grows, so a prefix's tiles are read from the same hashes.
fn tree(size: u64) -> &'static MemoryHashes {
    static TREE: OnceLock<MemoryHashes> = OnceLock::new();
    assert!(size <= MAX_SIZE);
    TREE.get_or_init(|| {
        MemoryHashes::from_leaf_hashes((0..MAX_SIZE).map(|i| leaf_hash(&i.to_be_bytes())))
    })
}

fn served(stored: &MemoryHashes) -> Served<'_> {
    Served {
        stored,
        tamper: None,
        fetched: Cell::new(0),
    }
}

/// Every stored hash the tree has at `level`, or a sample of them.
fn indexes(size: u64, level: u8) -> Vec<u64> {
    let count = size >> level;
    if count <= 600 {
        (0..count).collect()
    } else {
        (0..300).chain(count - 300..count).collect()
    }
}

#[test]
fn honest_tiles_give_the_stored_hashes() {
    for size in [
        1, 2, 3, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000, 131_073,
    ] {
        let stored = tree(size);
        let root = Edge::from_reader(stored, size).unwrap().root();
        let reader = TileHashReader::new(served(stored), size, root);
        reader.verify_root().unwrap();
        for level in 0..=17u8 {
            for index in indexes(size, level) {
                assert_eq!(
                    reader.read_hash(level, index).unwrap(),
                    stored.read_hash(level, index).unwrap(),
                    "size {size}, level {level}, index {index}"
                );
            }
        }
        // Proofs made from verified tiles are the stored ones, and verify.
        let edge = Edge::from_reader(&reader, size).unwrap();
        assert_eq!(edge.root(), root);
        for index in [0, size / 2, size - 1] {
            let proof = inclusion_proof(&reader, &edge, index).unwrap();
            let leaf = stored.read_hash(0, index).unwrap();
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        }
        assert!(reader.read_hash(0, size).is_err());
    }
}

#[test]
fn tiles_are_fetched_once() {
    let size = 70_000;
    let stored = tree(size);
    let root = Edge::from_reader(stored, size).unwrap().root();
    let reader = TileHashReader::new(served(stored), size, root);
    for index in 0..size {
        reader.read_hash(0, index).unwrap();
    }
    // 273 full level-0 tiles, the partial level-0, level-1 and level-2
    // tiles, and the one full level-1 tile.
    assert_eq!(reader.source().fetched.get(), 273 + 3 + 1);
}

#[test]
fn a_wrong_root_is_refused() {
    let stored = tree(1000);
    let mut root = Edge::from_reader(stored, 1000).unwrap().root();
    root[0] ^= 1;
    let reader = TileHashReader::new(served(stored), 1000, root);
    assert_eq!(
        reader.read_hash(0, 0),
        Err(TileVerifyError::RootMismatch { size: 1000 })
    );
    assert!(
        TileHashReader::new(served(stored), 0, root)
            .verify_root()
            .is_err()
    );
}

#[test]
fn a_short_tile_is_refused() {
    struct Short;
    impl TileSource for Short {
        type Error = String;
        fn fetch_tile(&self, _: &TilePath) -> Result<Vec<u8>, String> {
            Ok(vec![0; 31])
        }
    }
    let reader = TileHashReader::new(Short, 300, [0; 32]);
    assert!(matches!(
        reader.read_hash(0, 0),
        Err(TileVerifyError::Length { got: 31, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// With one bit of one tile flipped, every read either returns the true
    /// stored hash or fails; and a read that needs the tampered tile fails.
    #[test]
    fn a_tampered_tile_is_never_believed(
        size in 1..=MAX_SIZE,
        tile_pick in any::<prop::sample::Index>(),
        bit in any::<usize>(),
        reads in prop::collection::vec((0..18u8, any::<u64>()), 1..40),
    ) {
        let stored = tree(size);
        let root = Edge::from_reader(stored, size).unwrap().root();
        let honest = TileHashReader::new(served(stored), size, root);
        for (level, index) in &reads {
            let count = size >> level;
            if count > 0 {
                honest.read_hash(*level, index % count).unwrap();
            }
        }
        // Every tile the reader can need for this tree.
        let mut tiles: Vec<TilePath> = Vec::new();
        let mut seen = HashSet::new();
        for level in 0..=2u8 {
            let count = size.checked_shr(8 * u32::from(level)).unwrap_or(0);
            for index in 0..count.div_ceil(256) {
                let tile = TilePath::in_tree(
                    regis_merkle::tile::TileKind::Hashes { level }, index, size).unwrap();
                if seen.insert(tile) {
                    tiles.push(tile);
                }
            }
        }
        let bad = *tile_pick.get(&tiles);
        let source = Served { stored, tamper: Some((bad, bit)), fetched: Cell::new(0) };
        let tampered = TileHashReader::new(source, size, root);
        for (level, index) in reads {
            let count = size >> level;
            if count == 0 {
                continue;
            }
            let index = index % count;
            match tampered.read_hash(level, index) {
                Ok(hash) => prop_assert_eq!(hash, stored.read_hash(level, index).unwrap()),
                Err(TileVerifyError::TileMismatch { .. } | TileVerifyError::RootMismatch { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        // Reading every hash of the tampered tile's level must trip on it.
        let level = match bad.kind() {
            regis_merkle::tile::TileKind::Hashes { level } => level * 8,
            regis_merkle::tile::TileKind::Entries => 0,
        };
        let first = bad.index() * 256;
        let tripped = (first..first + u64::from(bad.width()))
            .any(|index| tampered.read_hash(level, index).is_err());
        prop_assert!(tripped);
    }
}

/// Tessera's published tiles, read through the verifier with the root of
/// its signed checkpoint: every leaf is the hash of its entry.
#[test]
fn tessera_tiles_verify_against_their_checkpoint() {
    struct Dir;
    impl TileSource for Dir {
        type Error = String;
        fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, String> {
            Ok(regis_fixtures::read(format!(
                "tlog/tessera-testdata/testdata/log/{tile}"
            )))
        }
    }
    let checkpoint = regis_fixtures::read_string("tlog/tessera-testdata/testdata/log/checkpoint");
    let root: [u8; 32] = B64
        .decode(checkpoint.lines().nth(2).unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let reader = TileHashReader::new(Dir, 15, root);
    let entries = [
        "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven",
        "twelf", "threeten", "fourten", "fivten",
    ];
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(
            reader.read_hash(0, index as u64).unwrap(),
            leaf_hash(entry.as_bytes())
        );
    }
}
