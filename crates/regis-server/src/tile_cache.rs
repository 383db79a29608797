//! Full tiles and entry bundles kept in memory, across registers. A full
//! tile never changes once the tree holds it (C2SP tlog-tiles), so a cached
//! one is never stale and needs no invalidation; partial tiles are not kept.
//! Reading a full hash tile from the store is a snapshot and a 256-row scan;
//! from here it is one map look-up. The cache is bounded in bytes and drops
//! its oldest tiles first, so memory does not grow with the logs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use regis_merkle::tile::TilePath;
use regis_store::Log;

/// Bytes of tiles the server keeps at most: 2,048 full hash tiles (8 KiB
/// each), or fewer, larger entry bundles.
pub const TILE_CACHE_BYTES: usize = 16 << 20;

/// Register name, log, tile.
type Key = (String, Log, TilePath);

/// A tile's bytes, their [`crate::http::etag_digest`], and for an entry
/// bundle its gzip, made once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileBytes {
    /// The tile as served.
    pub bytes: Bytes,
    /// What its entity tag names.
    pub digest: [u8; 16],
    /// The tile gzipped, if made.
    pub gzip: Option<Bytes>,
}

impl TileBytes {
    /// `bytes` with their digest, and their gzip if made.
    pub fn new(bytes: Bytes, gzip: Option<Bytes>) -> TileBytes {
        let digest = crate::http::etag_digest(&bytes);
        TileBytes {
            bytes,
            digest,
            gzip,
        }
    }

    /// The memory it holds.
    fn len(&self) -> usize {
        self.bytes.len() + self.gzip.as_ref().map_or(0, Bytes::len)
    }
}

/// Full tiles by register, log and path, oldest dropped first.
#[derive(Debug)]
pub struct TileCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tiles: HashMap<Key, TileBytes>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
}

impl TileCache {
    /// An empty cache holding at most `capacity` bytes of tiles.
    pub fn new(capacity: usize) -> TileCache {
        TileCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while the lock was held leaves at worst a miscounted
        // budget, never a wrong tile: every tile is inserted whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes of a full tile, if cached.
    pub fn get(&self, register: &str, log: Log, path: &TilePath) -> Option<TileBytes> {
        let key = (register.to_owned(), log, *path);
        self.lock().tiles.get(&key).cloned()
    }

    /// Keeps a full tile's bytes (the caller checks that it is full),
    /// dropping the oldest tiles to stay within the capacity. A tile larger
    /// than the whole capacity is not kept.
    pub fn insert(&self, register: &str, log: Log, path: &TilePath, tile: TileBytes) {
        let len = tile.len();
        if len > self.capacity {
            return;
        }
        let key = (register.to_owned(), log, *path);
        let mut inner = self.lock();
        if inner.tiles.contains_key(&key) {
            return;
        }
        while inner.bytes + len > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(dropped) = inner.tiles.remove(&oldest) {
                inner.bytes -= dropped.len();
            }
        }
        inner.bytes += len;
        inner.order.push_back(key.clone());
        inner.tiles.insert(key, tile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(index: u64) -> TilePath {
        TilePath::parse(&format!("tile/0/{index:03}")).unwrap()
    }

    #[test]
    fn keeps_tiles_within_its_capacity_dropping_the_oldest() {
        let cache = TileCache::new(3 * 8192);
        let bytes = |n: u8| TileBytes::new(Bytes::from(vec![n; 8192]), None);
        for n in 0..3 {
            cache.insert("a", Log::User, &tile(n.into()), bytes(n));
        }
        assert_eq!(cache.get("a", Log::User, &tile(1)), Some(bytes(1)));
        // Another register's or log's tile at the same path is another tile.
        assert_eq!(cache.get("b", Log::User, &tile(1)), None);
        assert_eq!(cache.get("a", Log::System, &tile(1)), None);
        cache.insert("a", Log::User, &tile(3), bytes(3));
        assert_eq!(cache.get("a", Log::User, &tile(0)), None);
        for n in 1..4 {
            assert_eq!(cache.get("a", Log::User, &tile(n)), Some(bytes(n as u8)));
        }
        assert_eq!(cache.lock().bytes, 3 * 8192);
        // Too large to keep at all.
        let large = TileBytes::new(
            Bytes::from(vec![0; 3 * 8192]),
            Some(Bytes::from(vec![0; 8192])),
        );
        cache.insert("a", Log::User, &tile(4), large);
        assert_eq!(cache.get("a", Log::User, &tile(4)), None);
        assert_eq!(cache.get("a", Log::User, &tile(3)), Some(bytes(3)));
    }
}
