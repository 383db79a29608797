//! The leaf hashes of a log, read one level-0 tile at a time from
//! untrusted tiles and authenticated against a trusted root, holding one
//! tile in memory. (`TileHashReader` keeps every tile it verified; level-0
//! tiles are 256 times more numerous than all the others together, so this
//! reader fetches them itself and keeps only the current one.)

use regis_merkle::tile::{TILE_WIDTH, TileKind, TilePath};
use regis_merkle::{Hash, HashReader, TileHashReader, TileSource, TileVerifyError, node_hash};

use crate::client::tiles_error;
use crate::error::Error;
use crate::http::{FetchError, HttpTiles};

/// Leaf hashes of the tree a [`TileHashReader`] trusts.
#[derive(Debug)]
pub(crate) struct LeafHashes<'r> {
    reader: &'r TileHashReader<HttpTiles>,
    /// The level-0 tile held: its index and hashes.
    tile: Option<(u64, Vec<Hash>)>,
}

impl<'r> LeafHashes<'r> {
    pub(crate) fn new(reader: &'r TileHashReader<HttpTiles>) -> Self {
        LeafHashes { reader, tile: None }
    }

    /// The hash of leaf `index`, authenticated.
    pub(crate) fn get(&mut self, index: u64) -> Result<Hash, Error> {
        let size = self.reader.size();
        let width = u64::from(TILE_WIDTH);
        let number = index / width;
        if self.tile.as_ref().map(|(held, _)| *held) != Some(number) {
            let hashes = self.fetch(number).map_err(tiles_error(size))?;
            self.tile = Some((number, hashes));
        }
        let offset = usize::try_from(index % width).unwrap_or(usize::MAX);
        self.tile
            .as_ref()
            .and_then(|(_, hashes)| hashes.get(offset).copied())
            .ok_or(Error::Tiles {
                size,
                error: TileVerifyError::NotInTree {
                    level: 0,
                    index,
                    size,
                },
            })
    }

    /// Level-0 tile `number`: a full one is checked against its parent
    /// hash (level 8, read through the reader, so authenticated); the
    /// partial one at the right edge is the reader's own (checked with the
    /// root).
    fn fetch(&self, number: u64) -> Result<Vec<Hash>, TileVerifyError<FetchError>> {
        let size = self.reader.size();
        let Some(tile) = TilePath::in_tree(TileKind::Hashes { level: 0 }, number, size) else {
            return Err(TileVerifyError::NotInTree {
                level: 0,
                index: number.saturating_mul(u64::from(TILE_WIDTH)),
                size,
            });
        };
        if !tile.is_full() {
            return tile
                .stored_range()
                .map(|index| self.reader.read_hash(0, index))
                .collect();
        }
        let bytes = self
            .reader
            .source()
            .fetch_tile(&tile)
            .map_err(|error| TileVerifyError::Fetch { tile, error })?;
        let expected = usize::from(tile.width()) * 32;
        if bytes.len() != expected {
            return Err(TileVerifyError::Length {
                tile,
                got: bytes.len(),
                expected,
            });
        }
        let hashes: Vec<Hash> = bytes
            .chunks_exact(32)
            .filter_map(|chunk| <Hash>::try_from(chunk).ok())
            .collect();
        let parent = self.reader.read_hash(8, number)?;
        if perfect_root(&hashes) != parent {
            return Err(TileVerifyError::TileMismatch { tile });
        }
        Ok(hashes)
    }
}

/// The root of a perfect subtree over `hashes` (a power of two of them).
fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [single] => *single,
                _ => Hash::default(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_default()
}
