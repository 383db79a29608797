//! Tessera's published 15-entry tiled log, rebuilt byte for byte: every entry
//! bundle, every level-0 tile and every checkpoint root at sizes 0 to 15.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use regis_merkle::tile::{TileKind, TilePath, push_bundle_entry, read_tile};
use regis_merkle::{Edge, Frontier, MemoryHashes, leaf_hash};

const LOG: &str = "tlog/tessera-testdata/testdata/log";

/// The log's entries, as its README names them.
const ENTRIES: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];

fn checkpoint_root(size: usize) -> [u8; 32] {
    let text = regis_fixtures::read_string(format!("{LOG}/checkpoint.{size}"));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("example.com/log/testdata"));
    assert_eq!(lines.next(), Some(size.to_string().as_str()));
    B64.decode(lines.next().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn rebuilds_every_tile_bundle_and_root() {
    let mut frontier = Frontier::new();
    let mut stored = MemoryHashes::new();
    let mut bundle = Vec::new();
    assert_eq!(frontier.root(), checkpoint_root(0));
    for (i, entry) in ENTRIES.iter().enumerate() {
        let size = i as u64 + 1;
        frontier
            .push_hash(leaf_hash(entry.as_bytes()), |level, index, hash| {
                stored.store(level, index, hash)
            })
            .unwrap();
        push_bundle_entry(&mut bundle, entry.as_bytes()).unwrap();
        assert_eq!(
            frontier.root(),
            checkpoint_root(i + 1),
            "root at size {size}"
        );
        assert_eq!(
            Edge::from_reader(&stored, size).unwrap().root(),
            checkpoint_root(i + 1)
        );

        let bundle_path = TilePath::in_tree(TileKind::Entries, 0, size).unwrap();
        assert_eq!(
            bundle_path.to_string(),
            format!("tile/entries/000.p/{size}")
        );
        assert_eq!(
            bundle,
            regis_fixtures::read(format!("{LOG}/{bundle_path}")),
            "{bundle_path}"
        );

        let tile_path = TilePath::in_tree(TileKind::Hashes { level: 0 }, 0, size).unwrap();
        assert_eq!(tile_path.to_string(), format!("tile/0/000.p/{size}"));
        let tile = read_tile(&stored, &tile_path).unwrap();
        assert_eq!(
            tile,
            regis_fixtures::read(format!("{LOG}/{tile_path}")),
            "{tile_path}"
        );

        // Nothing else exists at this size: no level-1 tile, no second tile.
        assert_eq!(
            TilePath::in_tree(TileKind::Hashes { level: 1 }, 0, size),
            None
        );
        assert_eq!(
            TilePath::in_tree(TileKind::Hashes { level: 0 }, 1, size),
            None
        );
    }
    // The published log holds exactly these tiles and bundles.
    let published = regis_fixtures::files(format!("{LOG}/tile"), "");
    assert_eq!(published.len(), 2 * ENTRIES.len());
}
