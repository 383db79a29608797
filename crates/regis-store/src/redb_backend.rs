//! The default backend: redb (checksummed pages, copy-on-write B-trees,
//! fsync on commit, MVCC read transactions).

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
    pub fn from_database(db: Database) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(backend_error)?;
        for table in Table::ALL {
            txn.open_table(definition(table)).map_err(backend_error)?;
        }
        txn.commit().map_err(backend_error)?;
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
        let done = {
            let mut writer = RedbWriter {
                tables: Table::ALL
                    .iter()
                    .map(|&table| txn.open_table(definition(table)).map_err(backend_error))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            work(&mut writer)?
        };
        // An error above drops the transaction uncommitted: redb aborts it.
        txn.commit().map_err(backend_error)?;
        Ok(done)
    }
}

/// The tables of one redb write transaction, indexed by [`Table`] position.
struct RedbWriter<'t> {
    tables: Vec<redb::Table<'t, Bytes, Bytes>>,
}

impl<'t> RedbWriter<'t> {
    fn table(&mut self, table: Table) -> Result<&mut redb::Table<'t, Bytes, Bytes>, StoreError> {
        self.tables
            .get_mut(table.position())
            .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))
    }
}

impl KvWriter for RedbWriter<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let open = self
            .tables
            .get(table.position())
            .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))?;
        let value = open.get(key).map_err(backend_error)?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.table(table)?
            .insert(key, value)
            .map_err(backend_error)?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.table(table)?.remove(key).map_err(backend_error)?;
        Ok(())
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
