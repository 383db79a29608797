//! C2SP tlog-tiles coordinates: tile paths, tile widths, tile contents and
//! entry bundles.
//!
//! A hash tile at tile level `L`, index `N`, holds the stored hashes of tree
//! level `8L` with indexes `256N ..= 256N + 255` (fewer for a partial tile).
//! Paths are `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, with `N`
//! written in zero-padded groups of three digits, all but the last prefixed by
//! `x`: 1234067 is `x001/x234/067`. Parsing is strict: a path is accepted only
//! if it is exactly the path [`TilePath`] would write.

use std::fmt;

use crate::hash::Hash;
use crate::reader::HashReader;

/// Tree levels per tile.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile or bundle.
pub const TILE_WIDTH: u16 = 256;
/// Tile levels a path may name (C2SP: 0 to 63).
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Hashes of tree level `8 * level`.
    Hashes {
        /// Tile level, 0 to 63.
        level: u8,
    },
    /// An entry bundle: the entries under the level-0 tile of the same index.
    Entries,
}

/// A tile or entry bundle: what it holds, its index in its level and its
/// width (256 for a full tile, 1 to 255 for a partial one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TilePath {
    kind: TileKind,
    index: u64,
    width: u16,
}

/// Why a string is not a canonical tile path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// It does not start with `tile/`.
    #[error("a tile path starts with \"tile/\"")]
    Prefix,
    /// The level is not `entries` or a decimal 0–63 without leading zeros.
    #[error("the tile level must be \"entries\" or a number from 0 to 63 without leading zeros")]
    Level,
    /// The index is not in canonical `x001/x234/067` form, or overflows.
    #[error(
        "the tile index must be 3-digit groups, all but the last prefixed by 'x', no leading zero group, at most 2^64-1"
    )]
    Index,
    /// The width is not a decimal 1–255 without leading zeros.
    #[error("a partial tile width must be a number from 1 to 255 without leading zeros")]
    Width,
}

/// A tile or width asked for that cannot exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a tile has 1 to 256 hashes and a level from 0 to 63")]
pub struct InvalidTile;

impl TilePath {
    /// A hash tile. `width` is 1 to 256 (256: full).
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Self, InvalidTile> {
        Self::new(TileKind::Hashes { level }, index, width)
    }

    /// An entry bundle. `width` is 1 to 256 (256: full).
    pub fn entries(index: u64, width: u16) -> Result<Self, InvalidTile> {
        Self::new(TileKind::Entries, index, width)
    }

    fn new(kind: TileKind, index: u64, width: u16) -> Result<Self, InvalidTile> {
        let level_ok = match kind {
            TileKind::Hashes { level } => level <= MAX_TILE_LEVEL,
            TileKind::Entries => true,
        };
        if !level_ok || width == 0 || width > TILE_WIDTH {
            return Err(InvalidTile);
        }
        Ok(TilePath { kind, index, width })
    }

    /// The tile at (`kind`, `index`) as it stands in a tree of `tree_size`
    /// leaves: full if the tree covers it, else partial; `None` if the tree
    /// holds none of it.
    pub fn in_tree(kind: TileKind, index: u64, tree_size: u64) -> Option<Self> {
        let level = match kind {
            TileKind::Hashes { level } if level > MAX_TILE_LEVEL => return None,
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        };
        let stored = hashes_at_tile_level(level, tree_size);
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        let width = stored
            .checked_sub(start)
            .filter(|&w| w > 0)?
            .min(u64::from(TILE_WIDTH));
        // `width` is 1..=256 by construction.
        Some(TilePath {
            kind,
            index,
            width: width as u16,
        })
    }

    /// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, strictly.
    pub fn parse(path: &str) -> Result<Self, TilePathError> {
        let rest = path.strip_prefix("tile/").ok_or(TilePathError::Prefix)?;
        let (level, rest) = rest.split_once('/').ok_or(TilePathError::Level)?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let level =
                parse_decimal(level, u64::from(MAX_TILE_LEVEL)).ok_or(TilePathError::Level)?;
            TileKind::Hashes { level: level as u8 }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = parse_decimal(width, u64::from(TILE_WIDTH) - 1)
                    .filter(|&w| w > 0)
                    .ok_or(TilePathError::Width)?;
                (index, width as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index(index).ok_or(TilePathError::Index)?;
        Ok(TilePath { kind, index, width })
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// Index of the tile within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of hashes or entries: 256 for a full tile.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile is full (immutable forever).
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tree level whose stored hashes this tile holds (0 for bundles).
    pub fn tree_level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level) * TILE_HEIGHT,
            TileKind::Entries => 0,
        }
    }

    /// The range of stored-hash indexes (at [`Self::tree_level`]) the tile
    /// covers; for a bundle, the range of leaf indexes.
    pub fn stored_range(&self) -> std::ops::Range<u64> {
        let start = self.index.saturating_mul(u64::from(TILE_WIDTH));
        start..start.saturating_add(u64::from(self.width))
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => f.write_str("tile/entries/")?,
        }
        let mut groups = [0u16; 7];
        let mut count = 0;
        let mut n = self.index;
        loop {
            groups[count] = (n % 1000) as u16;
            count += 1;
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups[..count].iter().rev().enumerate() {
            if i + 1 < count {
                write!(f, "x{group:03}/")?;
            } else {
                write!(f, "{group:03}")?;
            }
        }
        if !self.is_full() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// Stored hashes at tree level `8 * tile_level` in a tree of `tree_size`.
fn hashes_at_tile_level(tile_level: u8, tree_size: u64) -> u64 {
    tree_size
        .checked_shr(u32::from(tile_level) * TILE_HEIGHT)
        .unwrap_or(0)
}

/// A decimal without sign or leading zeros, at most `max`.
fn parse_decimal(text: &str, max: u64) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return None;
    }
    text.parse::<u64>().ok().filter(|&n| n <= max)
}

fn parse_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    if groups.len() > 7 {
        return None;
    }
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group.strip_prefix('x')?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        if i == 0 && !last && value == 0 {
            return None; // `x000/…` is a leading zero group.
        }
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    Some(index)
}

/// The bytes of a hash tile: its hashes, concatenated.
pub fn read_tile<R: HashReader + ?Sized>(reader: &R, tile: &TilePath) -> Result<Vec<u8>, R::Error> {
    let range = tile.stored_range();
    let mut hashes: Vec<Hash> = Vec::with_capacity(usize::from(tile.width));
    // Hash tiles exist only for tree levels below 64, so the level fits a u8.
    reader.read_hashes(
        tile.tree_level() as u8,
        range.start,
        range.end - range.start,
        &mut hashes,
    )?;
    Ok(hashes.concat())
}

/// Why bytes are not an entry bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry longer than a u16 length prefix can say.
    #[error("entry {index} is {len} bytes; a bundle entry holds at most 65535")]
    EntryTooLong {
        /// Position in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// The bytes end inside a length prefix or an entry.
    #[error("bundle truncated in entry {index}")]
    Truncated {
        /// Position in the bundle.
        index: usize,
    },
    /// More entries than a tile holds.
    #[error("bundle holds more than 256 entries")]
    TooManyEntries,
}

/// Appends `entry` to a bundle being written: a big-endian u16 length, then
/// the bytes.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), BundleError> {
    let len = u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLong {
        index: 0,
        len: entry.len(),
    })?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries.
pub fn parse_bundle(mut bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let index = entries.len();
        if index == usize::from(TILE_WIDTH) {
            return Err(BundleError::TooManyEntries);
        }
        let (len, rest) = bytes
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated { index })?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(BundleError::Truncated { index });
        }
        let (entry, rest) = rest.split_at(len);
        entries.push(entry);
        bytes = rest;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_spec_example() {
        let tile = TilePath::hashes(0, 1_234_067, 256).unwrap();
        assert_eq!(tile.to_string(), "tile/0/x001/x234/067");
        let tile = TilePath::entries(1_234_067, 3).unwrap();
        assert_eq!(tile.to_string(), "tile/entries/x001/x234/067.p/3");
        assert_eq!(
            TilePath::hashes(2, 0, 1).unwrap().to_string(),
            "tile/2/000.p/1"
        );
        let max = TilePath::hashes(63, u64::MAX, 255).unwrap();
        assert_eq!(
            max.to_string(),
            "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"
        );
        assert_eq!(TilePath::parse(&max.to_string()), Ok(max));
    }

    #[test]
    fn rejects_non_canonical_paths() {
        for bad in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "tile/00/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/x001/",
            "tile/0/x1/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/08",
            "tile/0/000.p/",
            "tile/0/000.p/1/",
            "tile/0/000/",
            "tile/0/../000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x002/x003/x004/x005/x006/x007/008",
            "tile/entries/000.p/1.p/1",
            "tile/ENTRIES/000",
            "tile/0/abc",
            "tile/0/0x1",
            "tile/0/ 001",
            "tile/0/000.P/1",
            "tile/data/000",
            "/tile/0/000",
        ] {
            assert!(TilePath::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn widths_follow_the_tree_size() {
        // The spec's example: a tree of 70,000 leaves.
        let size = 70_000;
        let hashes = |level| TileKind::Hashes { level };
        assert!(TilePath::in_tree(hashes(0), 272, size).unwrap().is_full());
        assert_eq!(
            TilePath::in_tree(hashes(0), 273, size).unwrap().width(),
            112
        );
        assert_eq!(TilePath::in_tree(hashes(0), 274, size), None);
        assert!(TilePath::in_tree(hashes(1), 0, size).unwrap().is_full());
        assert_eq!(TilePath::in_tree(hashes(1), 1, size).unwrap().width(), 17);
        assert_eq!(TilePath::in_tree(hashes(2), 0, size).unwrap().width(), 1);
        assert_eq!(TilePath::in_tree(hashes(3), 0, size), None);
        assert_eq!(TilePath::in_tree(hashes(8), 0, u64::MAX), None);
        assert_eq!(
            TilePath::in_tree(TileKind::Entries, 273, size)
                .unwrap()
                .width(),
            112
        );
        assert_eq!(TilePath::in_tree(hashes(1), 0, 256).unwrap().width(), 1);
    }

    #[test]
    fn bundles_round_trip() {
        let mut bundle = Vec::new();
        for entry in [&b"one"[..], b"", &[7u8; 300]] {
            push_bundle_entry(&mut bundle, entry).unwrap();
        }
        let entries = parse_bundle(&bundle).unwrap();
        assert_eq!(entries, vec![&b"one"[..], b"", &[7u8; 300]]);
        assert_eq!(
            parse_bundle(&bundle[..bundle.len() - 1]),
            Err(BundleError::Truncated { index: 2 })
        );
        assert!(push_bundle_entry(&mut bundle, &vec![0; 65536]).is_err());
    }
}
