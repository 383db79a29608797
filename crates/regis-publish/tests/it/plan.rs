//! The plan of a publication, checked against a model: for every pair of
//! sizes around the 256-boundaries of levels 0 to 2, the objects a chain of
//! publications uploads are exactly every tile, bundle and chunk of the
//! final size (none missing, none beyond it), each full object once.

use std::collections::{BTreeSet, HashSet};

use regis_merkle::tile::{TileKind, TilePath};
use regis_model::{Log, PerLog};
use regis_publish::plan::{CHUNK, tail_start};
use regis_publish::{Object, Superseded, plan};

/// Sizes near the boundaries of tile levels 0, 1 and 2.
fn sizes() -> Vec<u64> {
    let mut sizes = BTreeSet::new();
    for base in [0u64, 256, 512, 256 * 256, 256 * 256 * 2] {
        for delta in [0i64, 1, 2, -1, -2, 255, 257] {
            if let Some(size) = base.checked_add_signed(delta) {
                sizes.insert(size);
            }
        }
    }
    sizes.into_iter().collect()
}

/// Every tile and bundle a tree of `size` has (tlog-tiles: the full ones
/// and one partial per level).
fn tiles_of(size: u64) -> HashSet<TilePath> {
    let mut tiles = HashSet::new();
    let mut kinds: Vec<TileKind> = (0..=63).map(|level| TileKind::Hashes { level }).collect();
    kinds.push(TileKind::Entries);
    for kind in kinds {
        let mut index = 0;
        while let Some(tile) = TilePath::in_tree(kind, index, size) {
            tiles.insert(tile);
            index += 1;
        }
    }
    tiles
}

fn user(size: u64) -> PerLog<u64> {
    PerLog {
        user: size,
        system: 3,
    }
}

#[test]
fn a_publication_uploads_exactly_what_its_size_adds() {
    for &from in &sizes() {
        for &to in sizes().iter().filter(|&&to| to > from) {
            let plan = plan(user(from), user(to), false).unwrap();
            let tiles: Vec<TilePath> = plan
                .objects
                .iter()
                .filter_map(|object| match object {
                    Object::Tile(Log::User, tile) => Some(*tile),
                    Object::Tile(Log::System, _) => panic!("the system log did not grow"),
                    _ => None,
                })
                .collect();
            let unique: HashSet<TilePath> = tiles.iter().copied().collect();
            assert_eq!(unique.len(), tiles.len(), "{from} -> {to}: a tile twice");
            let new = tiles_of(to);
            let old = tiles_of(from);
            // Everything the new size has and the old did not, nothing else.
            let expected: HashSet<TilePath> = new.difference(&old).copied().collect();
            assert_eq!(unique, expected, "{from} -> {to}");
            // Chunks: each that became full; the tail of the new size.
            let chunks: Vec<u64> = plan
                .objects
                .iter()
                .filter_map(|object| match object {
                    Object::RsfChunk(start) => Some(*start),
                    _ => None,
                })
                .collect();
            let expected: Vec<u64> = (0..)
                .map(|i| i * CHUNK)
                .take_while(|start| start + CHUNK < to)
                .filter(|start| start + CHUNK >= from)
                .collect();
            assert_eq!(chunks, expected, "{from} -> {to}");
            assert!(plan.objects.contains(&Object::RsfTail {
                start: tail_start(to),
                end: to
            }));
            assert_eq!(
                plan.checkpoints,
                [
                    Object::Checkpoint(Log::System),
                    Object::Checkpoint(Log::User)
                ]
            );
            // Partials superseded: those of tiles partial at `from` and
            // full at `to`.
            for superseded in &plan.superseded {
                match superseded {
                    Superseded::Partials(Log::User, tile) => {
                        assert!(tile.is_full() && new.contains(tile));
                        let partial = TilePath::in_tree(tile.kind(), tile.index(), from).unwrap();
                        assert!(!partial.is_full() && old.contains(&partial));
                    }
                    Superseded::Tails(start) => {
                        assert_eq!(*start, tail_start(from));
                        assert!(start + CHUNK < to);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}

#[test]
fn chained_publications_upload_each_full_object_once() {
    let all = sizes();
    for step in [1, 2, 3, 5] {
        let chain: Vec<u64> = all.iter().copied().step_by(step).collect();
        let mut full = HashSet::new();
        let mut chunks = HashSet::new();
        for pair in chain.windows(2) {
            let plan = plan(user(pair[0]), user(pair[1]), true).unwrap();
            assert!(plan.objects.contains(&Object::WitnessPolicy));
            assert!(plan.objects.contains(&Object::Register));
            for object in plan.objects {
                match object {
                    Object::Tile(_, tile) if tile.is_full() => {
                        assert!(full.insert(tile), "{tile} uploaded twice")
                    }
                    Object::RsfChunk(start) => assert!(chunks.insert(start)),
                    _ => {}
                }
            }
        }
        let last = *chain.last().unwrap();
        let expected: HashSet<TilePath> = tiles_of(last)
            .into_iter()
            .filter(|tile| tile.is_full())
            .collect();
        assert_eq!(full, expected, "chain by {step}");
        assert_eq!(chunks.len() as u64, last.saturating_sub(1) / CHUNK);
    }
}

#[test]
fn the_system_log_and_the_same_sizes() {
    assert_eq!(plan(user(5), user(5), false), None);
    // Only the system log grew: its tiles, the tail again (it gains
    // system entries), no user tile.
    let plan = plan(
        PerLog { user: 5, system: 3 },
        PerLog { user: 5, system: 4 },
        false,
    )
    .unwrap();
    assert_eq!(
        plan.objects,
        [
            Object::Tile(Log::System, TilePath::hashes(0, 0, 4).unwrap()),
            Object::Tile(Log::System, TilePath::entries(0, 4).unwrap()),
            Object::RsfTail { start: 0, end: 5 },
            Object::Register,
        ]
    );
    assert!(plan.superseded.is_empty());
}

#[test]
fn paths_are_the_servers() {
    let name = "country";
    let tile = TilePath::hashes(1, 1234, 7).unwrap();
    assert_eq!(
        Object::Tile(Log::User, tile).path(name),
        "registers/country/log/tile/1/x001/234.p/7"
    );
    assert_eq!(
        Object::Tile(Log::System, TilePath::entries(0, 256).unwrap()).path(name),
        "registers/country/system-log/tile/entries/000"
    );
    assert_eq!(
        Object::RsfChunk(256).path(name),
        "registers/country/download-rsf/256/512"
    );
    assert_eq!(
        Object::RsfTail { start: 0, end: 0 }.path(name),
        "registers/country/download-rsf/0/0"
    );
    assert_eq!(
        Object::Checkpoint(Log::System).path(name),
        "registers/country/system-log/checkpoint"
    );
    let full = TilePath::hashes(0, 3, 256).unwrap();
    assert_eq!(
        Superseded::Partials(Log::User, full).folder(name),
        "registers/country/log/tile/0/003.p/"
    );
    assert_eq!(
        Superseded::Tails(512).kept(name).unwrap(),
        "registers/country/download-rsf/512/768"
    );
    assert!(Object::Tile(Log::User, full).is_immutable());
    assert!(Object::RsfChunk(0).is_immutable());
    assert!(!Object::RsfTail { start: 0, end: 3 }.is_immutable());
    assert!(!Object::Register.is_immutable());
}
