//! The opt-in backend: sled 0.34. Offered, not trusted by default: its flush
//! does not fully sync on Linux (`sync_file_range`, sled issues #1452 and
//! #1351), so an acknowledged commit can be lost on power failure, though
//! not on a process crash. See `spec/store.md`.
//!
//! A `sled::Batch` is applied from memory, so a transaction larger than
//! [`SPILL_BYTES`] (a bulk load) spills its writes to a redo tree and
//! commits by marking that tree committed, then applies it to the data in
//! bounded batches; opening the database finishes a committed redo tree or
//! drops an uncommitted one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::StoreError;
use crate::kv::{DirBackend, KvBackend, KvBatch, KvSnapshot, KvWriter, Table, TxnSize, Visit};

/// Bytes of keys and values a transaction gathers in memory before it
/// spills them to the redo tree.
const SPILL_BYTES: usize = 4 << 20;

/// Rows applied per batch when a redo tree is applied to the data.
const APPLY_ROWS: usize = 8192;

/// The tree a large transaction spills to: the data tree's keys, each value
/// tagged `PUT` or `DELETE`, and the `REDO_COMMITTED` marker.
const REDO_TREE: &str = "redo";

/// Present once a spilled transaction is durable: from then on it is
/// committed, and applying the redo tree (again, if a crash interrupted it)
/// finishes it. Table ids start at 1, so no row sorts before it.
const REDO_COMMITTED: &[u8] = &[0];

const DELETE: u8 = 0;
const PUT: u8 = 1;

/// The database directory inside a register's directory.
pub const SLED_DIR: &str = "sled";

/// A register's database in sled: every table in the default tree, each
/// key prefixed by the table's id, because a `sled::Batch` is atomic only
/// within one tree.
#[derive(Debug)]
pub struct SledBackend {
    db: sled::Db,
    redo: sled::Tree,
    /// Set when writing the commit marker, or applying a committed redo
    /// tree, failed: whether the transaction is committed is then known
    /// only to the next open, so nothing more is written until then.
    poisoned: AtomicBool,
}

fn prefixed(table: Table, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(table.id());
    out.extend_from_slice(key);
    out
}

impl DirBackend for SledBackend {
    fn exists_in(dir: &Path) -> bool {
        dir.join(SLED_DIR).is_dir()
    }

    /// Opens (creating if needed) `dir/sled`.
    ///
    /// sled releases its lock file asynchronously: I/O jobs still running
    /// on its thread pool after the last handle is dropped keep the file
    /// open for a moment. So a register reopened at once (a restart, a test)
    /// retries for up to two seconds while the lock is held.
    fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir.join(SLED_DIR))
            .cache_capacity(crate::CACHE_BYTES as u64);
        let mut attempts = 0;
        loop {
            match config.open() {
                Ok(db) => {
                    let redo = db.open_tree(REDO_TREE).map_err(StoreError::backend)?;
                    let backend = SledBackend {
                        db,
                        redo,
                        poisoned: AtomicBool::new(false),
                    };
                    backend.recover()?;
                    return Ok(backend);
                }
                // sled 0.34 (its last release) reports a held lock only in
                // this message.
                Err(sled::Error::Io(e))
                    if attempts < 100 && e.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(StoreError::backend(e)),
            }
        }
    }
}

impl KvBackend for SledBackend {
    type Snapshot = SledSnapshot;

    fn snapshot(&self) -> Result<SledSnapshot, StoreError> {
        // The tree handle is shared, not a snapshot: `Store` pins its sizes
        // when the snapshot begins and reads only what they cover.
        Ok(SledSnapshot {
            tree: (*self.db).clone(),
        })
    }

    fn commit(&self, batch: KvBatch) -> Result<(), StoreError> {
        self.check_poisoned()?;
        let mut writes = sled::Batch::default();
        for (table, table_writes) in batch.tables() {
            for (key, value) in table_writes {
                let key = prefixed(table, key);
                match value {
                    Some(value) => writes.insert(key, value.as_slice()),
                    None => writes.remove(key),
                }
            }
        }
        self.db.apply_batch(writes).map_err(StoreError::backend)?;
        self.db.flush().map_err(StoreError::backend)?;
        Ok(())
    }

    /// Gathers the writes in memory; past `SPILL_BYTES`, spills them to
    /// the redo tree. A transaction that never spilled commits as one
    /// batch. One that did: the rest is spilled, the redo tree flushed,
    /// then the `REDO_COMMITTED` marker written and flushed (the commit
    /// point: a crash before it leaves the data as it was, after it the
    /// transaction is finished on open), then applied in batches of
    /// `APPLY_ROWS`. Readers of the data see it applied table by table,
    /// `meta` (and so `head`) last; see `spec/store.md`, "Bulk loads".
    fn transact<T, E: From<StoreError>>(
        &self,
        _size: TxnSize,
        work: impl FnOnce(&mut dyn KvWriter) -> Result<T, E>,
    ) -> Result<T, E> {
        self.check_poisoned()?;
        let mut txn = SledTxn {
            backend: self,
            writes: BTreeMap::new(),
            bytes: 0,
            spilled: false,
        };
        let done = match work(&mut txn) {
            Ok(done) => done,
            Err(error) => {
                if txn.spilled {
                    // Best effort: rows left without the marker are
                    // dropped on open, and the next spill clears the tree
                    // first, so they are never applied.
                    let _ = self.redo.clear();
                }
                return Err(error);
            }
        };
        if !txn.spilled {
            let mut writes = sled::Batch::default();
            for (key, value) in txn.writes {
                match value {
                    Some(value) => writes.insert(key, value),
                    None => writes.remove(key),
                }
            }
            self.db.apply_batch(writes).map_err(StoreError::backend)?;
            self.db.flush().map_err(StoreError::backend)?;
            return Ok(done);
        }
        txn.spill()?;
        self.db.flush().map_err(StoreError::backend)?;
        let committed = self
            .redo
            .insert(REDO_COMMITTED, &[])
            .map_err(StoreError::backend)
            .and_then(|_| self.db.flush().map_err(StoreError::backend))
            .and_then(|_| self.apply_redo());
        if let Err(error) = committed {
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(error.into());
        }
        Ok(done)
    }
}

impl SledBackend {
    fn check_poisoned(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(
                "a large sled transaction failed after its commit point: reopen the register to \
                 finish or drop it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Finishes a transaction committed before a crash, or drops one that
    /// was not.
    fn recover(&self) -> Result<(), StoreError> {
        let backend = StoreError::backend;
        if self.redo.get(REDO_COMMITTED).map_err(backend)?.is_some() {
            return self.apply_redo();
        }
        if !self.redo.is_empty() {
            self.redo.clear().map_err(backend)?;
            self.db.flush().map_err(backend)?;
        }
        Ok(())
    }

    /// Applies the committed redo tree to the data, table by table in key
    /// order but `meta` last (whatever tables sort after it), so that a
    /// reader that pinned `head` never finds it ahead of the rows it covers;
    /// then removes the marker and the rows. Each row states a key's final
    /// value, so applying it again after a crash gives the same data.
    fn apply_redo(&self) -> Result<(), StoreError> {
        let backend = StoreError::backend;
        let meta = Table::Meta.id();
        let before_meta = self.redo.range(&[1u8][..]..&[meta][..]);
        let after_meta = self.redo.range(&[meta + 1][..]..);
        let of_meta = self.redo.range(&[meta][..]..&[meta + 1][..]);
        let mut batch = sled::Batch::default();
        let mut rows = 0;
        for row in before_meta.chain(after_meta).chain(of_meta) {
            let (key, value) = row.map_err(backend)?;
            match untag(&value)? {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
            rows += 1;
            if rows == APPLY_ROWS {
                self.db
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(backend)?;
                rows = 0;
            }
        }
        self.db.apply_batch(batch).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        self.redo.remove(REDO_COMMITTED).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        // Not atomic, and need not be: without the marker, what is left is
        // dropped on open.
        self.redo.clear().map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

/// A redo row's value: `Some(value)` to put, `None` to delete.
fn untag(row: &[u8]) -> Result<Option<&[u8]>, StoreError> {
    match row.split_first() {
        Some((&PUT, value)) => Ok(Some(value)),
        Some((&DELETE, [])) => Ok(None),
        _ => Err(StoreError::Corrupt("a malformed redo row".into())),
    }
}

/// A sled write transaction: its writes so far (keys prefixed as in the
/// data tree), over the redo tree once it has spilled, over the data.
struct SledTxn<'b> {
    backend: &'b SledBackend,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
    spilled: bool,
}

impl SledTxn<'_> {
    /// Moves the gathered writes to the redo tree.
    fn spill(&mut self) -> Result<(), StoreError> {
        let redo = &self.backend.redo;
        if !self.spilled {
            // Rows an aborted transaction may have left.
            redo.clear().map_err(StoreError::backend)?;
            self.spilled = true;
        }
        let mut batch = sled::Batch::default();
        for (key, value) in std::mem::take(&mut self.writes) {
            let tagged = match value {
                Some(mut value) => {
                    value.insert(0, PUT);
                    value
                }
                None => vec![DELETE],
            };
            batch.insert(key, tagged);
        }
        self.bytes = 0;
        redo.apply_batch(batch).map_err(StoreError::backend)
    }

    fn write(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        self.bytes += 1 + key.len() + value.map_or(0, <[u8]>::len);
        self.writes
            .insert(prefixed(table, key), value.map(<[u8]>::to_vec));
        if self.bytes >= SPILL_BYTES {
            self.spill()?;
        }
        Ok(())
    }
}

impl KvWriter for SledTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = prefixed(table, key);
        if let Some(written) = self.writes.get(&key) {
            return Ok(written.clone());
        }
        if self.spilled
            && let Some(row) = self.backend.redo.get(&key).map_err(StoreError::backend)?
        {
            return Ok(untag(&row)?.map(<[u8]>::to_vec));
        }
        let value = self.backend.db.get(&key).map_err(StoreError::backend)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(table, key, Some(value))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.write(table, key, None)
    }
}

/// Reads from sled's default tree.
#[derive(Debug)]
pub struct SledSnapshot {
    tree: sled::Tree,
}

impl KvSnapshot for SledSnapshot {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self
            .tree
            .get(prefixed(table, key))
            .map_err(StoreError::backend)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let start = prefixed(table, start);
        // The end of the table is the start of the next table's prefix.
        let end = match end {
            Some(end) => prefixed(table, end),
            None => vec![table.id() + 1],
        };
        let range = self.tree.range(start..end);
        let step = |item: sled::Result<(sled::IVec, sled::IVec)>| {
            let (key, value) = item.map_err(StoreError::backend)?;
            // Every key in the range starts with the table's id.
            let key = key.get(1..);
            debug_assert!(key.is_some(), "a sled key without its table id");
            let key =
                key.ok_or_else(|| StoreError::Corrupt("a sled key without its table id".into()))?;
            visit(key, &value)
        };
        walk(range, reverse, step)
    }
}

/// Feeds `items` to `step` in order, or in reverse, until `step` returns
/// `false`: the loop `scan` ends with.
fn walk<I: DoubleEndedIterator>(
    items: I,
    reverse: bool,
    mut step: impl FnMut(I::Item) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    if reverse {
        for item in items.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in items {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(table: &SledBackend, key: &[u8]) -> Option<Vec<u8>> {
        table.snapshot().unwrap().get(Table::Items, key).unwrap()
    }

    /// Enough rows to spill more than once.
    fn rows() -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
        (0u32..3 * SPILL_BYTES as u32 / 1000).map(|i| (i.to_be_bytes().to_vec(), vec![7; 1000]))
    }

    #[test]
    fn a_spilled_transaction_reads_its_writes_and_commits_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = SledBackend::open_dir(dir.path()).unwrap();
        let mut batch = KvBatch::new();
        batch.put(Table::Items, b"old".to_vec(), b"kept".to_vec());
        backend.commit(batch).unwrap();

        // Fails after spilling: nothing of it is written.
        let failed: Result<(), StoreError> = backend.transact(TxnSize::Bulk, |txn| {
            for (key, value) in rows() {
                txn.put(Table::Items, &key, &value)?;
            }
            txn.delete(Table::Items, b"old")?;
            Err(StoreError::Corrupt("refused".into()))
        });
        assert!(failed.is_err());
        assert_eq!(value(&backend, &0u32.to_be_bytes()), None);
        assert_eq!(value(&backend, b"old"), Some(b"kept".to_vec()));

        // Succeeds: reads its spilled writes back, and all of it lands.
        backend
            .transact(TxnSize::Bulk, |txn| {
                for (key, value) in rows() {
                    txn.put(Table::Items, &key, &value)?;
                }
                txn.delete(Table::Items, b"old")?;
                assert_eq!(
                    txn.get(Table::Items, &0u32.to_be_bytes())?,
                    Some(vec![7; 1000])
                );
                assert_eq!(txn.get(Table::Items, b"old")?, None);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        for (key, expected) in rows() {
            assert_eq!(value(&backend, &key), Some(expected));
        }
        assert_eq!(value(&backend, b"old"), None);
        assert!(backend.redo.is_empty());
    }

    #[test]
    fn open_finishes_a_committed_redo_tree_and_drops_an_uncommitted_one() {
        for committed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            {
                let backend = SledBackend::open_dir(dir.path()).unwrap();
                let mut batch = KvBatch::new();
                batch.put(Table::Items, b"gone".to_vec(), b"x".to_vec());
                backend.commit(batch).unwrap();
                // What a crash between the spill and the end of the apply
                // leaves: tagged rows, and the marker if it was committed.
                let key = |k: &[u8]| prefixed(Table::Items, k);
                backend.redo.insert(key(b"new"), &[PUT, 1, 2][..]).unwrap();
                backend.redo.insert(key(b"gone"), &[DELETE][..]).unwrap();
                if committed {
                    backend.redo.insert(REDO_COMMITTED, &[][..]).unwrap();
                }
                backend.db.flush().unwrap();
            }
            let backend = SledBackend::open_dir(dir.path()).unwrap();
            assert!(backend.redo.is_empty());
            if committed {
                assert_eq!(value(&backend, b"new"), Some(vec![1, 2]));
                assert_eq!(value(&backend, b"gone"), None);
            } else {
                assert_eq!(value(&backend, b"new"), None);
                assert_eq!(value(&backend, b"gone"), Some(b"x".to_vec()));
            }
        }
    }
}
