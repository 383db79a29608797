//! The opt-in backend: sled 0.34. Offered, not trusted by default: its flush
//! does not fully sync on Linux (`sync_file_range`, sled issues #1452 and
//! #1351), so an acknowledged commit can be lost on power failure, though
//! not on a process crash. See `spec/store.md`.

use std::path::Path;

use crate::StoreError;
use crate::kv::{DirBackend, KvBackend, KvBatch, KvSnapshot, Table, Visit};

/// The database directory inside a register's directory.
pub const SLED_DIR: &str = "sled";

/// A register's database in sled: every table in the default tree, each
/// key prefixed by the table's id, because a `sled::Batch` is atomic only
/// within one tree.
#[derive(Debug)]
pub struct SledBackend {
    db: sled::Db,
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
                Ok(db) => return Ok(SledBackend { db }),
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
        let mut step = |item: sled::Result<(sled::IVec, sled::IVec)>| {
            let (key, value) = item.map_err(StoreError::backend)?;
            visit(key.get(1..).unwrap_or_default(), &value)
        };
        if reverse {
            for item in range.rev() {
                if !step(item)? {
                    break;
                }
            }
        } else {
            for item in range {
                if !step(item)? {
                    break;
                }
            }
        }
        Ok(())
    }
}
