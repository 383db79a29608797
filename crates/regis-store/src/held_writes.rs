//! Writes a bulk transaction holds back to apply later in key order
//! (`redb_backend::bulk`), packed for memory.
//!
//! A bulk load holds hundreds of thousands of small rows (a record row, an
//! item's index row: tens of bytes each). Kept as a `HashMap` of two
//! `Vec<u8>`s each, every row cost about 100 bytes beyond its own (two heap
//! blocks, their headers, the map's slot) and the map's growth briefly held
//! two tables. Here every row is appended to one arena, and each table's
//! index holds only the row's offset: 8 bytes and a control byte.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::kv::Table;

/// A row's header in the arena: key length, then value length or
/// [`DELETED`], both u32 little-endian.
const HEADER: usize = 8;
/// The value length that marks a delete.
const DELETED: u32 = u32::MAX;

/// Held-back writes per table: the latest write of each key wins.
pub(crate) struct HeldWrites {
    arena: Vec<u8>,
    /// Per table (by [`Table`] position): the arena offset of each key's
    /// latest write.
    index: [HashTable<usize>; Table::ALL.len()],
    hasher: std::hash::RandomState,
}

/// One held write, borrowed from the arena.
pub(crate) struct Held<'a> {
    pub key: &'a [u8],
    /// `None` for a delete.
    pub value: Option<&'a [u8]>,
}

impl std::fmt::Debug for HeldWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldWrites")
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl HeldWrites {
    /// Room for `bytes` of rows, taken at once: an arena grown by doubling
    /// would briefly hold its old and its new buffer. (Pages not yet
    /// written to take no memory.) Keys are hashed by `hasher`: one
    /// transaction's batches share one, so that a key looked up in each is
    /// hashed once ([`HeldWrites::get`]).
    pub(crate) fn with_capacity(bytes: usize, hasher: std::hash::RandomState) -> HeldWrites {
        HeldWrites {
            arena: Vec::with_capacity(bytes),
            index: std::array::from_fn(|_| HashTable::new()),
            hasher,
        }
    }

    /// The memory held: the arena and each index's slots.
    pub(crate) fn bytes(&self) -> usize {
        self.arena.len()
            + self
                .index
                .iter()
                .map(|table| table.capacity() * (std::mem::size_of::<usize>() + 1))
                .sum::<usize>()
    }

    /// Holds `value` (`None`: a delete) for `key` of `table`, replacing
    /// what was held for it.
    ///
    /// Keys and values longer than 4 GiB are not stored by Regis (its
    /// largest value is an item, bounded by the RSF line limit); they are
    /// refused rather than truncated.
    pub(crate) fn hold(
        &mut self,
        table: Table,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), TooLong> {
        let key_len = u32::try_from(key.len()).map_err(|_| TooLong)?;
        let value_len = match value {
            Some(value) => u32::try_from(value.len())
                .ok()
                .filter(|&len| len != DELETED)
                .ok_or(TooLong)?,
            None => DELETED,
        };
        let offset = self.arena.len();
        self.arena.extend_from_slice(&key_len.to_le_bytes());
        self.arena.extend_from_slice(&value_len.to_le_bytes());
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value.unwrap_or_default());
        let hash = self.hasher.hash_one(key);
        let arena = &self.arena;
        let hasher = &self.hasher;
        match self.index[table.position()].entry(
            hash,
            |&held| row(arena, held).key == key,
            |&held| hasher.hash_one(row(arena, held).key),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = offset,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(offset);
            }
        }
        Ok(())
    }

    /// What is held for `key` of `table`, whose hash by this batch's
    /// hasher is `hash`: `None` if nothing is, `Some(None)` for a delete.
    pub(crate) fn get(&self, table: Table, key: &[u8], hash: u64) -> Option<Option<&[u8]>> {
        self.index[table.position()]
            .find(hash, |&held| row(&self.arena, held).key == key)
            .map(|&held| row(&self.arena, held).value)
    }

    /// What hashes the keys.
    pub(crate) fn hasher(&self) -> &std::hash::RandomState {
        &self.hasher
    }

    /// Rows held, over all tables.
    pub(crate) fn rows(&self) -> usize {
        self.index.iter().map(HashTable::len).sum()
    }

    /// Hands each table's held writes to `apply` in key order. The order
    /// is sorted by each key's first eight bytes, and only keys that share
    /// them are compared whole: most rows' keys are then never read.
    pub(crate) fn for_each_sorted<E>(
        &self,
        mut apply: impl FnMut(Table, Held<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut order: Vec<(u64, usize)> = Vec::new();
        for (position, index) in self.index.iter().enumerate() {
            order.clear();
            order.extend(index.iter().map(|&held| {
                let key = row(&self.arena, held).key;
                let mut prefix = [0u8; 8];
                let len = key.len().min(8);
                prefix[..len].copy_from_slice(&key[..len]);
                (u64::from_be_bytes(prefix), held)
            }));
            order.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| row(&self.arena, a.1).key.cmp(row(&self.arena, b.1).key))
            });
            let table = Table::ALL[position];
            for &(_, held) in &order {
                apply(table, row(&self.arena, held))?;
            }
        }
        Ok(())
    }

    /// Holds nothing, keeping the arena's and indexes' memory for the next
    /// writes.
    pub(crate) fn clear(&mut self) {
        self.arena.clear();
        self.index.iter_mut().for_each(HashTable::clear);
    }
}

/// A key or value too long to hold.
#[derive(Debug)]
pub(crate) struct TooLong;

/// The row at `offset`, which [`HeldWrites::hold`] wrote.
fn row(arena: &[u8], offset: usize) -> Held<'_> {
    let number = |at: usize| {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&arena[at..at + 4]);
        u32::from_le_bytes(bytes)
    };
    // Offsets come only from `hold`, which wrote a whole row there: the
    // slices below are within the arena.
    let key_len = number(offset) as usize;
    let value_len = number(offset + 4);
    let key_start = offset + HEADER;
    let key = &arena[key_start..key_start + key_len];
    let value = (value_len != DELETED).then(|| {
        let start = key_start + key_len;
        &arena[start..start + value_len as usize]
    });
    Held { key, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_write_wins_and_rows_come_in_key_order() {
        let hasher = std::hash::RandomState::new();
        let mut held = HeldWrites::with_capacity(64, hasher.clone());
        let get = |held: &HeldWrites, table, key: &[u8]| {
            held.get(table, key, hasher.hash_one(key))
                .map(|v| v.map(<[u8]>::to_vec))
        };
        let table = Table::ALL[0];
        let other = Table::ALL[1];
        held.hold(table, b"b", Some(b"1")).unwrap();
        held.hold(table, b"a", Some(b"2")).unwrap();
        held.hold(table, b"b", None).unwrap();
        held.hold(other, b"b", Some(b"")).unwrap();
        assert_eq!(get(&held, table, b"a"), Some(Some(b"2".to_vec())));
        assert_eq!(get(&held, table, b"b"), Some(None));
        assert_eq!(get(&held, other, b"b"), Some(Some(Vec::new())));
        assert_eq!(get(&held, table, b"c"), None);
        let mut seen = Vec::new();
        // Keys sharing an eight-byte prefix, and one that is a prefix.
        for key in [&b"prefix-b"[..], b"prefix-a1", b"prefix-a"] {
            held.hold(other, key, Some(b"p")).unwrap();
        }
        assert_eq!(held.rows(), 6);
        held.for_each_sorted(|t, row| {
            seen.push((
                t.position(),
                row.key.to_vec(),
                row.value.map(<[u8]>::to_vec),
            ));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, b"a".to_vec(), Some(b"2".to_vec())),
                (0, b"b".to_vec(), None),
                (1, b"b".to_vec(), Some(Vec::new())),
                (1, b"prefix-a".to_vec(), Some(b"p".to_vec())),
                (1, b"prefix-a1".to_vec(), Some(b"p".to_vec())),
                (1, b"prefix-b".to_vec(), Some(b"p".to_vec())),
            ]
        );
        held.clear();
        assert_eq!(get(&held, table, b"a"), None);
        assert_eq!(held.rows(), 0);
    }
}
