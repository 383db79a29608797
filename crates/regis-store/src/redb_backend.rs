//! The default backend: redb (checksummed pages, copy-on-write B-trees,
//! fsync on commit, MVCC read transactions).

use std::collections::HashMap;
use std::path::Path;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition,
};

use crate::StoreError;
use crate::kv::{DirBackend, KvBackend, KvBatch, KvSnapshot, KvWriter, Table, Visit, walk};

/// The database file inside a register's directory.
pub const REDB_FILE: &str = "store.redb";

/// Where a new database is built before it is renamed into place.
const REDB_NEW_FILE: &str = "store.redb.new";

type Bytes = &'static [u8];

fn definition(table: Table) -> TableDefinition<'static, Bytes, Bytes> {
    TableDefinition::new(table.name())
}

fn backend_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::backend(error.into())
}

/// A register's database in redb.
#[derive(Debug)]
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Uses an open database (for instance one on a custom
    /// [`redb::StorageBackend`], as the crash tests do); creates any table
    /// it lacks so that read transactions always find every table.
    ///
    /// A database that has them all is not written to: the last commit
    /// stays the last writer's, whose saved allocator state spares the next
    /// open after a crash redb's repair (see [`KvBackend::transact`]).
    pub fn from_database(db: Database) -> Result<Self, StoreError> {
        let read = db.begin_read().map_err(backend_error)?;
        let complete = Table::ALL
            .iter()
            .all(|&table| read.open_table(definition(table)).is_ok());
        drop(read);
        if !complete {
            let mut txn = db.begin_write().map_err(backend_error)?;
            txn.set_quick_repair(true);
            for table in Table::ALL {
                txn.open_table(definition(table)).map_err(backend_error)?;
            }
            txn.commit().map_err(backend_error)?;
        }
        Ok(RedbBackend { db })
    }
}

impl DirBackend for RedbBackend {
    fn exists_in(dir: &Path) -> bool {
        dir.join(REDB_FILE).is_file()
    }

    /// Opens (creating if needed) `dir/store.redb`, creating `dir` too.
    ///
    /// A new database is built beside it and renamed into place once its
    /// tables exist and are synced, so that a crash while creating one leaves
    /// either no database or a whole one, never a torn header.
    fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        let io = StoreError::backend;
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(REDB_FILE);
        let mut builder = redb::Builder::new();
        builder.set_cache_size(crate::CACHE_BYTES);
        if !path.exists() {
            let new = dir.join(REDB_NEW_FILE);
            match std::fs::remove_file(&new) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            drop(Self::from_database(
                builder.create(&new).map_err(backend_error)?,
            )?);
            std::fs::rename(&new, &path).map_err(io)?;
            // The rename is durable only once the directory is synced.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Self::from_database(builder.open(&path).map_err(backend_error)?)
    }
}

impl KvBackend for RedbBackend {
    type Snapshot = RedbSnapshot;

    /// An empty commit that saves redb's allocator state (quick repair):
    /// while it is the last commit, opening after a crash loads that state
    /// instead of walking every tree to rebuild it. Small commits skip it
    /// (a two-phase commit costs one more fsync); the sequencer settles
    /// when it runs out of work.
    fn settle(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        txn.set_quick_repair(true);
        txn.commit().map_err(backend_error)
    }

    fn snapshot(&self) -> Result<RedbSnapshot, StoreError> {
        let txn = self.db.begin_read().map_err(backend_error)?;
        let tables = Table::ALL
            .iter()
            .map(|&table| txn.open_table(definition(table)).map_err(backend_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RedbSnapshot { tables, _txn: txn })
    }

    fn commit(&self, batch: KvBatch) -> Result<(), StoreError> {
        self.transact(|writer| {
            for (table, writes) in batch.tables() {
                for (key, value) in writes {
                    match value {
                        Some(value) => writer.put(table, key, value)?,
                        None => writer.delete(table, key)?,
                    }
                }
            }
            Ok(())
        })
    }

    /// One redb write transaction for the whole of `work`. redb bounds the
    /// dirty pages it keeps in memory (its write buffer, part of
    /// `CACHE_BYTES`) and writes the rest to free space in the file, which
    /// no committed root references until the commit: so memory does not
    /// grow with what `work` writes, and a crash before the commit's header
    /// flip leaves the last commit as it was.
    fn transact<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&mut dyn KvWriter) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut txn = self.db.begin_write().map_err(backend_error)?;
        // Immediate is redb's default; set it so that no future default can
        // weaken what `commit` promises.
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        let (done, written) = {
            let mut writer = RedbWriter {
                tables: Table::ALL
                    .iter()
                    .map(|&table| txn.open_table(definition(table)).map_err(backend_error))
                    .collect::<Result<Vec<_>, _>>()?,
                pending: Default::default(),
                pending_bytes: 0,
                written_bytes: 0,
            };
            let done = work(&mut writer)?;
            writer.flush()?;
            (done, writer.written_bytes)
        };
        if written >= QUICK_REPAIR_BYTES {
            // A large commit also saves redb's allocator state (a two-phase
            // commit: one more fsync, nothing next to its work), so that
            // opening after a crash loads it instead of walking every tree
            // (`settle` does it after small ones).
            txn.set_quick_repair(true);
        }
        // An error above drops the transaction uncommitted: redb aborts it.
        txn.commit().map_err(backend_error)?;
        Ok(done)
    }
}

/// Transactions writing at least this many bytes of rows save redb's
/// allocator state with their commit.
const QUICK_REPAIR_BYTES: usize = 1 << 20;

/// Bytes of writes a transaction holds back before applying them in key
/// order (`RedbWriter`).
const PENDING_BYTES: usize = 48 << 20;
/// What one held-back write costs beyond its key and value (hash-table
/// slot, vector headers, allocator rounding), for the bound above.
const PENDING_OVERHEAD: usize = 96;

/// The tables of one redb write transaction, indexed by [`Table`] position,
/// and the writes held back from them.
///
/// A large transaction (a bulk load) writes rows at random places of
/// B-trees far larger than redb's write buffer: applied one by one, nearly
/// every write would read back and rewrite a page that was already written
/// out. Held back and applied in key order, a batch of them rewrites each
/// page once. Reads see held-back writes first.
struct RedbWriter<'t> {
    tables: Vec<redb::Table<'t, Bytes, Bytes>>,
    /// Per table: key → value, or `None` for a delete.
    pending: [HashMap<Vec<u8>, Option<Vec<u8>>>; Table::ALL.len()],
    pending_bytes: usize,
    /// Key and value bytes written by the transaction.
    written_bytes: usize,
}

impl<'t> RedbWriter<'t> {
    fn hold(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let bytes = key.len() + value.map_or(0, <[u8]>::len);
        self.written_bytes += bytes;
        self.pending_bytes += bytes + PENDING_OVERHEAD;
        self.pending[table.position()].insert(key.to_vec(), value.map(<[u8]>::to_vec));
        if self.pending_bytes >= PENDING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Applies every held-back write, table by table, in key order.
    fn flush(&mut self) -> Result<(), StoreError> {
        for (table, pending) in self.tables.iter_mut().zip(&mut self.pending) {
            let mut writes: Vec<_> = pending.drain().collect();
            writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(backend_error)?;
                    }
                    None => {
                        table.remove(key.as_slice()).map_err(backend_error)?;
                    }
                }
            }
        }
        self.pending_bytes = 0;
        Ok(())
    }
}

impl KvWriter for RedbWriter<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(held) = self.pending[table.position()].get(key) {
            return Ok(held.clone());
        }
        let open = self
            .tables
            .get(table.position())
            .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))?;
        let value = open.get(key).map_err(backend_error)?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.hold(table, key, Some(value))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.hold(table, key, None)
    }
}

/// A redb read transaction with every table open.
pub struct RedbSnapshot {
    /// Indexed by [`Table`] position.
    tables: Vec<ReadOnlyTable<Bytes, Bytes>>,
    /// Keeps the snapshot alive as long as the tables.
    _txn: ReadTransaction,
}

impl std::fmt::Debug for RedbSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSnapshot").finish_non_exhaustive()
    }
}

impl RedbSnapshot {
    fn table(&self, table: Table) -> Result<&ReadOnlyTable<Bytes, Bytes>, StoreError> {
        self.tables
            .get(table.position())
            .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))
    }
}

impl KvSnapshot for RedbSnapshot {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.table(table)?.get(key).map_err(backend_error)?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let table = self.table(table)?;
        let range = match end {
            Some(end) => table.range::<&[u8]>(start..end),
            None => table.range::<&[u8]>(start..),
        }
        .map_err(backend_error)?;
        let step = |item: Result<_, redb::StorageError>| -> Result<bool, StoreError> {
            let (key, value): (redb::AccessGuard<Bytes>, redb::AccessGuard<Bytes>) =
                item.map_err(backend_error)?;
            visit(key.value(), value.value())
        };
        walk(range, reverse, step)
    }
}
