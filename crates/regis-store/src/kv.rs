//! The small key-value interface both backends implement; everything that
//! knows what the keys mean lives above it, once, in [`crate::store`].

use std::path::Path;

use crate::StoreError;

/// The tables of a register's database (`spec/store.md`): the indexes
/// over its files ([`crate::Files`]) and the named values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Item SHA-256 → offset of the item in the data file.
    Items,
    /// (log, key) → latest entry number.
    Records,
    /// (digest of field and value, key) → nothing: user records by field value.
    FieldIndex,
    /// Named values: layout version, sizes, checkpoints.
    Meta,
    /// System entry number → the user-log size when it was appended.
    SystemPositions,
    /// (file, offset) → bytes appended there by a commit whose files were
    /// not yet synced: the files' write-ahead log (`crate::Files`).
    FileTails,
}

impl Table {
    /// Every table, in id order.
    pub const ALL: [Table; 6] = [
        Table::Items,
        Table::Records,
        Table::FieldIndex,
        Table::Meta,
        Table::SystemPositions,
        Table::FileTails,
    ];

    /// The table's name (a redb table name).
    pub fn name(self) -> &'static str {
        match self {
            Table::Items => "items",
            Table::Records => "records",
            Table::FieldIndex => "field_index",
            Table::Meta => "meta",
            Table::SystemPositions => "system_positions",
            Table::FileTails => "file_tails",
        }
    }

    /// The table's id byte (a sled key prefix), 1 to 6.
    pub fn id(self) -> u8 {
        self as u8 + 1
    }

    /// Position in [`Table::ALL`].
    pub(crate) fn position(self) -> usize {
        self as usize
    }
}

/// One write: a value to put, or `None` to delete the key.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Writes to apply in one atomic commit, kept per table in the order they
/// were made (a later write to the same key wins).
#[derive(Debug, Default)]
pub struct KvBatch {
    tables: [Vec<Write>; Table::ALL.len()],
}

impl KvBatch {
    /// No writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `table`.
    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.tables[table.position()].push((key, Some(value)));
    }

    /// Deletes `key` from `table`.
    pub fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.tables[table.position()].push((key, None));
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(Vec::is_empty)
    }

    /// Each table with its writes, in order.
    pub fn tables(&self) -> impl Iterator<Item = (Table, &[Write])> {
        Table::ALL
            .iter()
            .zip(&self.tables)
            .map(|(table, writes)| (*table, writes.as_slice()))
    }
}

/// What a write transaction may write, for backends that place bounded
/// commits and bulk loads differently (redb: `crate::redb_backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnSize {
    /// A bounded batch (a sequencer batch, a repair on open): it may be
    /// gathered in memory until it commits.
    Batch,
    /// Any amount (a streamed load): written as it goes, in bounded memory.
    Bulk,
}

/// What a scan calls for each row: `Ok(true)` to go on, `Ok(false)` to
/// stop, an error to stop and fail the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// A key-value database with atomic, durable multi-table commits.
pub trait KvBackend: Send + Sync + 'static {
    /// A consistent read view.
    type Snapshot: KvSnapshot;

    /// A read view. On backends without multi-key snapshots (sled) every
    /// single read must still see either all or none of any commit.
    fn snapshot(&self) -> Result<Self::Snapshot, StoreError>;

    /// Makes the database quick to open after a crash, if the backend has
    /// such a notion (redb: a commit that saves its allocator state, which
    /// small commits do not). Called when the writer is idle.
    fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Why the database takes no more writes until [`Self::recover`]
    /// (a failure outside any commit, such as redb's merge of a recent
    /// database), if it does not.
    fn failure(&self) -> Option<StoreError> {
        None
    }

    /// After a failed write (a [`StoreError::Io`]): forgets what this
    /// handle holds in memory about the database and reopens it from what
    /// is durable. Read views begun before may fail from then on. The
    /// default cannot: the register needs a restart.
    fn recover(&self) -> Result<(), StoreError> {
        Err(StoreError::Io(std::io::Error::other(
            "this backend cannot reopen itself after a failed write: restart the server",
        )))
    }

    /// Applies `batch` atomically and durably: once this returns `Ok`, a
    /// crash keeps all of it; if it fails, or the process dies before it
    /// returns, either all or none of it is there after reopening.
    fn commit(&self, batch: KvBatch) -> Result<(), StoreError>;

    /// Runs `work`, which writes about `size`, in one write transaction
    /// that reads its own writes, and commits what it wrote atomically and durably (as [`Self::commit`])
    /// if it returns `Ok`; if it returns an error, nothing of it is written.
    ///
    /// The default gathers the writes in memory over a snapshot and commits
    /// them as one [`KvBatch`], so its memory grows with what `work` writes.
    /// Both backends override it so that a [`TxnSize::Bulk`] load of any
    /// size runs in bounded memory: redb's transactions spill to the file,
    /// sled's to a redo tree.
    fn transact<T, E: From<StoreError>>(
        &self,
        _size: TxnSize,
        work: impl FnOnce(&mut dyn KvWriter) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut overlay = Overlay::new(self.snapshot()?);
        let done = work(&mut overlay)?;
        let mut batch = KvBatch::new();
        for (table, writes) in Table::ALL.into_iter().zip(overlay.into_writes()) {
            batch.tables[table.position()].extend(writes);
        }
        self.commit(batch)?;
        Ok(done)
    }
}

/// The reads and writes of one write transaction ([`KvBackend::transact`]):
/// a read sees the transaction's own earlier writes.
pub trait KvWriter {
    /// The value at `key`, as this transaction left it.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `key` to `value` in `table`.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Deletes `key` from `table`.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
}

/// Per table, in key order: each key's last write (`None`: deleted).
pub(crate) type Writes = [std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>; Table::ALL.len()];

/// A transaction gathered in memory: a snapshot with the writes so far over
/// it, the last write to each key only (the default transaction, and redb's
/// batches).
pub(crate) struct Overlay<S> {
    snapshot: S,
    tables: Writes,
}

impl<S> Overlay<S> {
    pub(crate) fn new(snapshot: S) -> Self {
        Overlay {
            snapshot,
            tables: Default::default(),
        }
    }

    /// What the transaction wrote.
    pub(crate) fn into_writes(self) -> Writes {
        self.tables
    }
}

impl<S: KvSnapshot> KvWriter for Overlay<S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tables[table.position()].get(key) {
            Some(written) => Ok(written.clone()),
            None => self.snapshot.get(table, key),
        }
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tables[table.position()].insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.tables[table.position()].insert(key.to_vec(), None);
        Ok(())
    }
}

/// A backend that keeps a register's database in the register's directory.
pub trait DirBackend: KvBackend + Sized {
    /// Whether `dir` holds a database of this backend.
    fn exists_in(dir: &Path) -> bool;

    /// Opens the database in `dir`, creating `dir` and an empty database if
    /// needed.
    fn open_dir(dir: &Path) -> Result<Self, StoreError>;
}

/// Reads from a [`KvBackend`] view.
pub trait KvSnapshot: Send + Sync {
    /// The value at `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `visit(key, value)` for the keys in `[start, end)` (to the
    /// end of the table when `end` is `None`), in key order or in reverse,
    /// until `visit` returns `false`.
    fn scan(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;
}

/// The first key after every key that starts with `prefix`, or `None` if
/// there is none (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn table_ids_are_positions_plus_one() {
        for (position, table) in Table::ALL.iter().enumerate() {
            assert_eq!(table.position(), position);
            assert_eq!(usize::from(table.id()), position + 1);
        }
    }
}
