//! Reading stored hashes from untrusted tiles, verified against a trusted
//! tree head: the client side of C2SP tlog-tiles.
//!
//! Every tile is authenticated before any hash of it is returned:
//! - a **full** tile at tile level `t`, index `n` hashes (as the perfect
//!   subtree of its 256 hashes) to the hash at tree level `8(t+1)`, index
//!   `n`, which is read (and so authenticated) from the tile level above;
//! - the **partial** tiles, one per tile level at most, are the right edge
//!   of the tree: each hash in them belongs to exactly one peak (the perfect
//!   subtrees the tree size's bits stand for), and the peaks fold to the
//!   root. They are fetched and checked together, once.
//!
//! So a hash returned is one the trusted root commits to, whatever the tile
//! source did. This is what golang.org/x/mod/sumdb/tlog's `TileHashReader`
//! does, rebuilt on this crate's stored-hash layout.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::reader::HashReader;
use crate::tile::{TILE_HEIGHT, TILE_WIDTH, TileKind, TilePath};

/// Where tiles come from: an HTTP client, a cache, a directory. Untrusted.
pub trait TileSource {
    /// Why a fetch failed.
    type Error;

    /// The bytes served for `tile` (a hash tile: its hashes, concatenated).
    fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, Self::Error>;
}

/// Why a hash could not be read from verified tiles.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileVerifyError<E> {
    /// The source failed.
    #[error("fetching {tile}: {error}")]
    Fetch {
        /// The tile asked for.
        tile: TilePath,
        /// The source's error.
        error: E,
    },
    /// A tile of the wrong size.
    #[error("{tile} is {got} bytes, expected {expected}")]
    Length {
        /// The tile.
        tile: TilePath,
        /// Bytes served.
        got: usize,
        /// Bytes its width calls for.
        expected: usize,
    },
    /// A full tile that does not hash to its parent hash.
    #[error("{tile} does not hash to its parent in the tile level above")]
    TileMismatch {
        /// The tile.
        tile: TilePath,
    },
    /// The right-edge (partial) tiles do not fold to the trusted root.
    #[error("the right-edge tiles of the tree of size {size} do not hash to its root")]
    RootMismatch {
        /// The tree size.
        size: u64,
    },
    /// A hash outside the tree was asked for.
    #[error("no stored hash at level {level}, index {index} in a tree of size {size}")]
    NotInTree {
        /// Level asked for.
        level: u8,
        /// Index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
}

/// A [`HashReader`] over tiles from an untrusted [`TileSource`], for the
/// tree of `size` leaves whose root is trusted (from a verified checkpoint).
#[derive(Debug)]
pub struct TileHashReader<S> {
    source: S,
    size: u64,
    root: Hash,
    /// Verified tiles' hashes, by (tile level, tile index).
    verified: Mutex<HashMap<(u8, u64), Vec<Hash>>>,
}

impl<S: TileSource> TileHashReader<S> {
    /// A reader of the tree of `size` leaves with root `root`. Nothing is
    /// fetched until a hash is read.
    pub fn new(source: S, size: u64, root: Hash) -> Self {
        TileHashReader {
            source,
            size,
            root,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The trusted root.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The source, for callers that also fetch entry bundles from it.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Fetches and checks the right-edge tiles against the root; the empty
    /// tree's root is checked directly.
    pub fn verify_root(&self) -> Result<(), TileVerifyError<S::Error>> {
        if self.size == 0 {
            return if self.root == EMPTY_ROOT {
                Ok(())
            } else {
                Err(TileVerifyError::RootMismatch { size: 0 })
            };
        }
        if self.is_verified(self.edge_tiles().next()) {
            return Ok(());
        }
        let mut fetched = Vec::new();
        for tile in self.edge_tiles() {
            fetched.push((tile, self.fetch(&tile)?));
        }
        // Peaks, lowest level first: the bits of the tree size. Peak `L`
        // folds 2^(L mod 8) hashes at the end of the partial tile of tile
        // level L / 8 (see the module docs for why it lies there).
        let mut root: Option<Hash> = None;
        for level in 0..64u32 {
            if self.size >> level & 1 == 0 {
                continue;
            }
            let tile_level = level / TILE_HEIGHT;
            let Some((tile, hashes)) = fetched.iter().find(|(tile, _)| {
                tile.kind()
                    == TileKind::Hashes {
                        level: tile_level as u8,
                    }
            }) else {
                return Err(TileVerifyError::RootMismatch { size: self.size });
            };
            let span = 1usize << (level % TILE_HEIGHT);
            let end = usize::from(tile.width()) & !(span - 1);
            let Some(peak_hashes) = hashes.get(end.saturating_sub(span)..end) else {
                return Err(TileVerifyError::RootMismatch { size: self.size });
            };
            let peak = perfect_root(peak_hashes);
            root = Some(match root {
                None => peak,
                Some(right) => node_hash(&peak, &right),
            });
        }
        if root != Some(self.root) {
            return Err(TileVerifyError::RootMismatch { size: self.size });
        }
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        for (tile, hashes) in fetched {
            verified.insert(key(&tile), hashes);
        }
        Ok(())
    }

    /// The partial tiles of the tree, one per tile level whose stored-hash
    /// count is not a multiple of 256.
    fn edge_tiles(&self) -> impl Iterator<Item = TilePath> + '_ {
        (0..=crate::tile::MAX_TILE_LEVEL).filter_map(|level| {
            let count = self
                .size
                .checked_shr(u32::from(level) * TILE_HEIGHT)
                .unwrap_or(0);
            let index = count / u64::from(TILE_WIDTH);
            TilePath::in_tree(TileKind::Hashes { level }, index, self.size)
                .filter(|tile| !tile.is_full())
        })
    }

    fn is_verified(&self, tile: Option<TilePath>) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        tile.is_some_and(|tile| verified.contains_key(&key(&tile)))
    }

    /// The hashes of tile (`tile_level`, `index`) as it stands in the tree,
    /// authenticated.
    fn tile_hashes(
        &self,
        tile_level: u8,
        index: u64,
    ) -> Result<Vec<Hash>, TileVerifyError<S::Error>> {
        let cached = {
            let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            verified.get(&(tile_level, index)).cloned()
        };
        if let Some(hashes) = cached {
            return Ok(hashes);
        }
        let level = u32::from(tile_level) * TILE_HEIGHT;
        let Some(tile) =
            TilePath::in_tree(TileKind::Hashes { level: tile_level }, index, self.size)
        else {
            return Err(TileVerifyError::NotInTree {
                level: level as u8,
                index,
                size: self.size,
            });
        };
        if !tile.is_full() {
            self.verify_root()?;
            return self.tile_hashes(tile_level, index);
        }
        let hashes = self.fetch(&tile)?;
        // A full tile is a perfect subtree of 2^8 stored hashes: its root
        // is the stored hash one tile level up, read (so verified) there.
        let parent =
            self.read_hash((level + TILE_HEIGHT) as u8, index)
                .map_err(|error| match error {
                    TileVerifyError::NotInTree { .. } => TileVerifyError::TileMismatch { tile },
                    other => other,
                })?;
        if perfect_root(&hashes) != parent {
            return Err(TileVerifyError::TileMismatch { tile });
        }
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.insert(key(&tile), hashes.clone());
        Ok(hashes)
    }

    fn fetch(&self, tile: &TilePath) -> Result<Vec<Hash>, TileVerifyError<S::Error>> {
        let bytes = self
            .source
            .fetch_tile(tile)
            .map_err(|error| TileVerifyError::Fetch { tile: *tile, error })?;
        let expected = usize::from(tile.width()) * 32;
        if bytes.len() != expected {
            return Err(TileVerifyError::Length {
                tile: *tile,
                got: bytes.len(),
                expected,
            });
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|chunk| {
                let mut hash = [0; 32];
                hash.copy_from_slice(chunk);
                hash
            })
            .collect())
    }
}

impl<S: TileSource> HashReader for TileHashReader<S> {
    type Error = TileVerifyError<S::Error>;

    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let not_in_tree = TileVerifyError::NotInTree {
            level,
            index,
            size: self.size,
        };
        let stored = self.size.checked_shr(u32::from(level)).unwrap_or(0);
        if index >= stored || u32::from(level) >= 64 {
            return Err(not_in_tree);
        }
        // (level, index) is the perfect subtree over 2^r hashes of tree
        // level 8t, which all sit in one tile of tile level t.
        let tile_level = u32::from(level) / TILE_HEIGHT;
        let r = u32::from(level) % TILE_HEIGHT;
        let first = index << r;
        let hashes = self.tile_hashes(tile_level as u8, first / u64::from(TILE_WIDTH))?;
        let start = (first % u64::from(TILE_WIDTH)) as usize;
        match hashes.get(start..start + (1 << r)) {
            Some(span) => Ok(perfect_root(span)),
            None => Err(not_in_tree),
        }
    }
}

fn key(tile: &TilePath) -> (u8, u64) {
    match tile.kind() {
        TileKind::Hashes { level } => (level, tile.index()),
        TileKind::Entries => (u8::MAX, tile.index()),
    }
}

/// The root of a perfect subtree over `hashes` (a power-of-two count).
fn perfect_root(hashes: &[Hash]) -> Hash {
    match hashes {
        [] => EMPTY_ROOT,
        [one] => *one,
        _ => {
            let (left, right) = hashes.split_at(hashes.len() / 2);
            node_hash(&perfect_root(left), &perfect_root(right))
        }
    }
}
