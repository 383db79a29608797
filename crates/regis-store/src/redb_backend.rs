//! The default backend: redb (checksummed pages, copy-on-write B-trees,
//! fsync on commit, MVCC read transactions), in three databases.
//!
//! A redb commit rewrites every B-tree page it touches, and the index rows
//! of a register land at random places (hashes, keys): a commit of a few
//! thousand rows into the tables of a large register rewrites thousands of
//! pages. So commits of bounded size ([`TxnSize::Batch`]: the sequencer's)
//! go to a small *recent* database, and when it has taken
//! [`RedbOptions::merge_bytes`] of rows it is frozen and the other recent
//! database takes the commits, while a merger thread copies the frozen
//! one's rows into the *main* database in one sorted commit (each page
//! rewritten once for many commits) and then empties it. Reads look in the
//! active recent database, then the frozen one, then the main one; a
//! recent database marks deletes with a tombstone. Bulk transactions
//! ([`TxnSize::Bulk`]: loads) wait for the recent databases to be merged
//! and write to the main one directly.
//!
//! Every commit of the main database saves redb's allocator state (quick
//! repair), so opening after a crash never walks its trees; only the recent
//! databases, small by construction, may need redb's repair walk.
//! `spec/store.md`, "The databases", has the layout and the crash argument.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use crate::StoreError;
use crate::kv::{
    DirBackend, KvBackend, KvBatch, KvSnapshot, KvWriter, Overlay, Table, TxnSize, Visit, Writes,
};

mod bulk;

/// The main database file inside a register's directory.
pub const REDB_FILE: &str = "store.redb";

/// The two recent databases, beside the main one.
pub const RECENT_FILES: [&str; 2] = ["recent.0.redb", "recent.1.redb"];

/// Page cache of each recent database (the main one has
/// [`crate::CACHE_BYTES`]).
const RECENT_CACHE_BYTES: usize = 16 << 20;

/// In a recent database, a value is this byte and the value...
const PUT: u8 = 1;
/// ...or this byte alone: the key is deleted (a tombstone over older
/// databases).
const DELETED: u8 = 0;

/// A recent database's generation (`u64`, the larger the newer) under the
/// key [`GENERATION`]: on open it tells which of the two took commits last.
const LAYER: TableDefinition<'static, &'static str, u64> = TableDefinition::new("layer");
const GENERATION: &str = "generation";

/// How many times [`RedbOptions::merge_bytes`] the active recent database
/// may hold while the frozen one is still being merged, before commits
/// wait for the merge (back-pressure: the recent databases stay small).
const BACKLOG: usize = 4;

type Bytes = &'static [u8];

fn definition(table: Table) -> TableDefinition<'static, Bytes, Bytes> {
    TableDefinition::new(table.name())
}

/// redb's error as the store's: the disk's failures (which leave the
/// database refusing every later operation until it is reopened) apart
/// from the rest.
fn backend_error(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(error) => StoreError::Io(error),
        error @ (redb::Error::PreviousIo | redb::Error::DatabaseClosed) => {
            StoreError::Io(std::io::Error::other(error))
        }
        error => StoreError::backend(error),
    }
}

/// How a [`RedbBackend`] places and merges its commits.
#[derive(Clone, Copy, Debug)]
pub struct RedbOptions {
    /// Bytes of rows (keys and values) the active recent database takes
    /// before it is frozen and merged into the main database.
    pub merge_bytes: usize,
    /// Merge on the backend's own thread, and apply a bulk transaction's
    /// writes on a thread of their own (`true`); or in the thread whose
    /// commit filled the recent database, before that commit returns, and
    /// in the thread writing the bulk transaction: slower, but every write
    /// happens in one order (for crash tests).
    pub background: bool,
    /// Bytes of writes a bulk transaction gathers before it applies them
    /// in key order (`bulk`); twice that may be held, one batch being
    /// applied while the next is gathered.
    pub bulk_batch_bytes: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            merge_bytes: 8 << 20,
            background: true,
            // With `HeldWrites`' packing, about 180,000 of a load's rows.
            bulk_batch_bytes: 12 << 20,
        }
    }
}

/// A register's database in redb: a main database and two recent ones.
///
/// After a write fails, redb refuses every later operation on that
/// database ("Previous I/O error"), reads included, until it is reopened:
/// [`KvBackend::recover`] closes all three and opens them again from what
/// is durable, with `opener`.
pub struct RedbBackend {
    /// The open databases; `None` while they are being reopened, or when
    /// reopening failed.
    open: RwLock<Option<Open>>,
    opener: Opener,
    options: RedbOptions,
}

/// Opens the main database and the two recent ones, in file order.
pub type Opener = Box<dyn Fn() -> Result<(Database, [Database; 2]), StoreError> + Send + Sync>;

/// Open databases and the thread that merges them.
struct Open {
    shared: Arc<Shared>,
    merger: Option<JoinHandle<()>>,
}

impl Open {
    /// Stops the merger thread once its merge in hand (if any) is done;
    /// the databases close when `shared` goes.
    fn close(mut self) {
        lock(&self.shared.roles).stop = true;
        self.shared.changed.notify_all();
        if let Some(merger) = self.merger.take() {
            // A merger that panicked has nothing left to clean up.
            let _ = merger.join();
        }
    }
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend").finish_non_exhaustive()
    }
}

/// What the writer, the merger and the readers share.
struct Shared {
    main: Database,
    recent: [Database; 2],
    options: RedbOptions,
    roles: Mutex<Roles>,
    /// Signalled whenever `roles` changes.
    changed: Condvar,
    /// Held for the whole of a write transaction: one writer at a time.
    writing: Mutex<()>,
}

/// Which recent database does what.
#[derive(Debug)]
struct Roles {
    /// The recent database commits go to.
    active: usize,
    /// The other one, when it holds rows not yet merged and emptied. While
    /// it is `None` the other recent database is empty.
    frozen: Option<usize>,
    /// Bytes of rows committed to the active database since it became so.
    active_bytes: usize,
    generations: [u64; 2],
    /// Whether each recent database may hold rows: one that does not is
    /// left out of read views (a register that only serves reads reads one
    /// database).
    written: [bool; 2],
    /// Why a merge failed: every later commit fails with it (the register
    /// needs a restart, which merges again).
    failed: Option<MergeFailure>,
    /// Tells the merger thread to end.
    stop: bool,
}

/// Locks `roles`; a panic elsewhere while it was held (none of its
/// updates can leave it half-done: each is a few field assignments) does
/// not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a merge failed, and whether for want of room.
#[derive(Debug)]
struct MergeFailure {
    why: String,
    disk_full: bool,
}

fn merge_failed(failure: &MergeFailure) -> StoreError {
    let kind = if failure.disk_full {
        std::io::ErrorKind::StorageFull
    } else {
        std::io::ErrorKind::Other
    };
    StoreError::Io(std::io::Error::new(
        kind,
        format!(
            "merging a recent database into the main one failed earlier: {}",
            failure.why
        ),
    ))
}

/// Whether a database holds rows in any of the tables.
fn has_rows(db: &Database) -> Result<bool, StoreError> {
    let read = db.begin_read().map_err(backend_error)?;
    for table in Table::ALL {
        if !read
            .open_table(definition(table))
            .map_err(backend_error)?
            .is_empty()
            .map_err(backend_error)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates any table `db` lacks (and, in a recent database, its
/// generation), so that read transactions always find every table. A
/// database that has them all is not written to: the last commit stays the
/// last writer's, whose saved allocator state spares the next open after a
/// crash redb's repair. Returns the generation (0 for the main database).
fn complete(db: &Database, new_generation: Option<u64>) -> Result<u64, StoreError> {
    let read = db.begin_read().map_err(backend_error)?;
    let tables = Table::ALL
        .iter()
        .all(|&table| read.open_table(definition(table)).is_ok());
    let generation = match read.open_table(LAYER) {
        Ok(layer) => layer
            .get(GENERATION)
            .map_err(backend_error)?
            .map(|g| g.value()),
        Err(_) => None,
    };
    drop(read);
    if tables && (new_generation.is_none() || generation.is_some()) {
        return Ok(generation.unwrap_or(0));
    }
    let mut txn = db.begin_write().map_err(backend_error)?;
    txn.set_quick_repair(true);
    for table in Table::ALL {
        txn.open_table(definition(table)).map_err(backend_error)?;
    }
    let generation = match (generation, new_generation) {
        (Some(generation), _) => generation,
        (None, Some(generation)) => {
            txn.open_table(LAYER)
                .map_err(backend_error)?
                .insert(GENERATION, generation)
                .map_err(backend_error)?;
            generation
        }
        (None, None) => 0,
    };
    txn.commit().map_err(backend_error)?;
    Ok(generation)
}

/// Opens (creating if needed) `dir/file`. A new database is built beside it
/// and renamed into place once its tables exist and are synced, so that a
/// crash while creating one leaves either no database or a whole one,
/// never a torn header.
fn open_file(
    dir: &Path,
    file: &str,
    cache: usize,
    new_generation: Option<u64>,
) -> Result<Database, StoreError> {
    let io = StoreError::backend;
    let path = dir.join(file);
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache);
    if !path.exists() {
        let new = dir.join(format!("{file}.new"));
        match std::fs::remove_file(&new) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let db = builder.create(&new).map_err(backend_error)?;
        complete(&db, new_generation)?;
        drop(db);
        std::fs::rename(&new, &path).map_err(io)?;
        // The rename is durable only once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    builder.open(&path).map_err(backend_error)
}

impl RedbBackend {
    /// Opens the databases with `opener` (for instance on a custom
    /// [`redb::StorageBackend`], as the crash tests do), and again with it
    /// to recover from a failed write. Creates any table one lacks; starts
    /// merging a recent database that the last run left frozen.
    pub fn with_opener(opener: Opener, options: RedbOptions) -> Result<Self, StoreError> {
        let (main, recent) = opener()?;
        let open = Open::start(main, recent, options)?;
        Ok(RedbBackend {
            open: RwLock::new(Some(open)),
            opener,
            options,
        })
    }

    /// The open databases, or why there are none.
    fn shared(&self) -> Result<Arc<Shared>, StoreError> {
        match &*self.open.read().unwrap_or_else(PoisonError::into_inner) {
            Some(open) => Ok(Arc::clone(&open.shared)),
            None => Err(StoreError::Io(std::io::Error::other(
                "the database is closed after a failed write and not yet reopened",
            ))),
        }
    }

    /// Opens (creating if needed) the databases in `dir`, creating `dir`
    /// too.
    pub fn open_dir_with(dir: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        let dir = dir.to_owned();
        let opener: Opener = Box::new(move || {
            let main = open_file(&dir, REDB_FILE, crate::CACHE_BYTES, None)?;
            let recent = [
                open_file(&dir, RECENT_FILES[0], RECENT_CACHE_BYTES, Some(1))?,
                open_file(&dir, RECENT_FILES[1], RECENT_CACHE_BYTES, Some(0))?,
            ];
            Ok((main, recent))
        });
        Self::with_opener(opener, options)
    }
}

impl Open {
    fn start(
        main: Database,
        recent: [Database; 2],
        options: RedbOptions,
    ) -> Result<Self, StoreError> {
        complete(&main, None)?;
        // New pairs start with the first one newer.
        let generations = [
            complete(&recent[0], Some(1))?,
            complete(&recent[1], Some(0))?,
        ];
        let (newer, older) = if generations[0] >= generations[1] {
            (0, 1)
        } else {
            (1, 0)
        };
        let written = [has_rows(&recent[0])?, has_rows(&recent[1])?];
        let frozen = written[older].then_some(older);
        let shared = Arc::new(Shared {
            main,
            recent,
            options,
            roles: Mutex::new(Roles {
                active: newer,
                frozen,
                active_bytes: 0,
                generations,
                written,
                failed: None,
                stop: false,
            }),
            changed: Condvar::new(),
            writing: Mutex::new(()),
        });
        let merger = if options.background {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name("redb merger".into())
                .spawn(move || shared.run_merger())
                .map_err(StoreError::backend)?;
            Some(handle)
        } else {
            if frozen.is_some() {
                shared.merge_frozen()?;
            }
            None
        };
        Ok(Open { shared, merger })
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        let open = self.open.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = open.take() {
            open.close();
        }
    }
}

impl Shared {
    /// The merger thread: merges each database frozen, until stopped.
    fn run_merger(&self) {
        loop {
            {
                let roles = self
                    .changed
                    .wait_while(lock(&self.roles), |roles| {
                        !roles.stop && (roles.frozen.is_none() || roles.failed.is_some())
                    })
                    .unwrap_or_else(PoisonError::into_inner);
                if roles.stop {
                    return;
                }
            }
            // A failure is kept in `roles.failed`, which later commits report.
            let _ = self.merge_frozen();
        }
    }

    /// Copies the frozen recent database's rows into the main database in
    /// one commit, then empties it and makes it the newer of the two, ready
    /// to become active. A crash between the two commits leaves rows in
    /// both with the same values: merged again on open.
    fn merge_frozen(&self) -> Result<(), StoreError> {
        let (frozen, generation) = {
            let roles = lock(&self.roles);
            let Some(frozen) = roles.frozen else {
                return Ok(());
            };
            (frozen, roles.generations[roles.active] + 1)
        };
        let result = self
            .copy_into_main(frozen)
            .and_then(|()| self.empty_recent(frozen, generation));
        let mut roles = lock(&self.roles);
        match &result {
            Ok(()) => {
                roles.frozen = None;
                roles.generations[frozen] = generation;
                roles.written[frozen] = false;
            }
            Err(error) => {
                roles.failed = Some(MergeFailure {
                    why: error.to_string(),
                    disk_full: error.is_disk_full(),
                })
            }
        }
        drop(roles);
        self.changed.notify_all();
        result
    }

    fn copy_into_main(&self, recent: usize) -> Result<(), StoreError> {
        let read = self.recent[recent].begin_read().map_err(backend_error)?;
        let mut txn = self.main.begin_write().map_err(backend_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        txn.set_quick_repair(true);
        for table in Table::ALL {
            let source = read.open_table(definition(table)).map_err(backend_error)?;
            let mut target = txn.open_table(definition(table)).map_err(backend_error)?;
            for row in source.iter().map_err(backend_error)? {
                let (key, value) = row.map_err(backend_error)?;
                match untag(value.value())? {
                    Some(value) => {
                        target.insert(key.value(), value).map_err(backend_error)?;
                    }
                    None => {
                        target.remove(key.value()).map_err(backend_error)?;
                    }
                }
            }
        }
        txn.commit().map_err(backend_error)
    }

    fn empty_recent(&self, recent: usize, generation: u64) -> Result<(), StoreError> {
        let mut txn = self.recent[recent].begin_write().map_err(backend_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        txn.set_quick_repair(true);
        for table in Table::ALL {
            txn.delete_table(definition(table)).map_err(backend_error)?;
            txn.open_table(definition(table)).map_err(backend_error)?;
        }
        txn.open_table(LAYER)
            .map_err(backend_error)?
            .insert(GENERATION, generation)
            .map_err(backend_error)?;
        txn.commit().map_err(backend_error)
    }
}

/// Durably gives a recent database `generation`.
fn set_generation(db: &Database, generation: u64) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(backend_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(backend_error)?;
    txn.set_quick_repair(true);
    txn.open_table(LAYER)
        .map_err(backend_error)?
        .insert(GENERATION, generation)
        .map_err(backend_error)?;
    txn.commit().map_err(backend_error)
}

impl Shared {
    /// Freezes the active database (the other one is empty) and has it
    /// merged: by the merger thread, or here. Called under `writing`.
    ///
    /// The database that becomes active must be the newer of the two on
    /// disk before it takes a commit: opening takes the newer one for the
    /// active one and merges the other first, so were it older, its rows
    /// would be shadowed by the frozen one's older values after a crash or
    /// a failed merge. An emptied database is made newer than the active
    /// one (`merge_frozen`); a new pair is not, so it is made so here.
    fn freeze<'s>(&'s self, mut roles: MutexGuard<'s, Roles>) -> Result<(), StoreError> {
        let (old, new) = (roles.active, 1 - roles.active);
        if roles.generations[new] <= roles.generations[old] {
            let generation = roles.generations[old] + 1;
            drop(roles);
            set_generation(&self.recent[new], generation)?;
            roles = lock(&self.roles);
            roles.generations[new] = generation;
        }
        roles.frozen = Some(old);
        roles.active = new;
        roles.active_bytes = 0;
        drop(roles);
        self.changed.notify_all();
        if self.options.background {
            Ok(())
        } else {
            self.merge_frozen()
        }
    }

    /// Waits while a merge is in hand; fails if one failed.
    fn wait_for_merge<'r>(
        &self,
        roles: MutexGuard<'r, Roles>,
    ) -> Result<MutexGuard<'r, Roles>, StoreError> {
        let roles = self
            .changed
            .wait_while(roles, |roles| {
                roles.frozen.is_some() && roles.failed.is_none()
            })
            .unwrap_or_else(PoisonError::into_inner);
        match &roles.failed {
            Some(failure) => Err(merge_failed(failure)),
            None => Ok(roles),
        }
    }

    /// After `bytes` of rows went to the active database: freezes it once
    /// it is full, waiting for the previous merge only past the backlog.
    /// The commit is durable already: a merge that fails here (or failed)
    /// is kept in `roles.failed` for the next transaction to report.
    fn account(&self, bytes: usize) {
        let mut roles = lock(&self.roles);
        roles.active_bytes += bytes;
        let merge_bytes = self.options.merge_bytes;
        if roles.active_bytes < merge_bytes {
            return;
        }
        if roles.frozen.is_some() {
            if roles.active_bytes < merge_bytes.saturating_mul(BACKLOG) {
                return;
            }
            match self.wait_for_merge(roles) {
                Ok(waited) => roles = waited,
                Err(_) => return,
            }
        }
        if let Err(error) = self.freeze(roles) {
            // Kept like a failed merge: the writer reopens the databases.
            lock(&self.roles).failed = Some(MergeFailure {
                why: error.to_string(),
                disk_full: error.is_disk_full(),
            });
        }
    }

    /// Fails if a merge (or a freeze) failed: nothing more is committed
    /// until the databases are reopened, which merges again.
    fn check_merges(&self) -> Result<(), StoreError> {
        match &lock(&self.roles).failed {
            Some(failure) => Err(merge_failed(failure)),
            None => Ok(()),
        }
    }

    /// Merges both recent databases into the main one, for a bulk
    /// transaction to write there directly.
    fn drain(&self) -> Result<(), StoreError> {
        let roles = self.wait_for_merge(lock(&self.roles))?;
        if !has_rows(&self.recent[roles.active])? {
            return Ok(());
        }
        self.freeze(roles)?;
        drop(self.wait_for_merge(lock(&self.roles))?);
        Ok(())
    }

    /// A read view: the recent databases, newest first, then the main one,
    /// their read transactions begun under the roles lock so that they
    /// match the roles (a merge commits the main database before it empties
    /// a recent one, so a view never misses a merged row).
    fn snapshot(&self) -> Result<RedbSnapshot, StoreError> {
        let roles = lock(&self.roles);
        let mut layers = Vec::with_capacity(3);
        for recent in std::iter::once(roles.active).chain(roles.frozen) {
            if roles.written[recent] {
                layers.push(Layer::begin(&self.recent[recent], true)?);
            }
        }
        layers.push(Layer::begin(&self.main, false)?);
        drop(roles);
        Ok(RedbSnapshot { layers })
    }

    /// Commits `pending` (sorted by key, per table) to the active database.
    fn commit_recent(&self, pending: &Writes) -> Result<(), StoreError> {
        // Marked before the commit, so that no view begun after it leaves
        // the database out.
        let active = {
            let mut roles = lock(&self.roles);
            let active = roles.active;
            roles.written[active] = true;
            active
        };
        let mut txn = self.recent[active].begin_write().map_err(backend_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        let mut bytes = 0;
        let mut tagged = Vec::new();
        for (table, writes) in Table::ALL.iter().zip(pending) {
            if writes.is_empty() {
                continue;
            }
            let mut open = txn.open_table(definition(*table)).map_err(backend_error)?;
            for (key, value) in writes {
                tagged.clear();
                match value {
                    Some(value) => {
                        tagged.push(PUT);
                        tagged.extend_from_slice(value);
                    }
                    None => tagged.push(DELETED),
                }
                bytes += key.len() + tagged.len();
                open.insert(key.as_slice(), tagged.as_slice())
                    .map_err(backend_error)?;
            }
        }
        txn.commit().map_err(backend_error)?;
        self.account(bytes);
        Ok(())
    }
}

/// A recent database's stored value as the value it stands for (`None`: a
/// tombstone).
fn untag(stored: &[u8]) -> Result<Option<&[u8]>, StoreError> {
    match stored.split_first() {
        Some((&PUT, value)) => Ok(Some(value)),
        Some((&DELETED, [])) => Ok(None),
        _ => Err(StoreError::Corrupt(
            "a recent database holds a value that is neither a put nor a delete".into(),
        )),
    }
}

impl DirBackend for RedbBackend {
    fn exists_in(dir: &Path) -> bool {
        dir.join(REDB_FILE).is_file()
    }

    /// [`RedbBackend::open_dir_with`] the default options.
    fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::open_dir_with(dir, RedbOptions::default())
    }
}

impl KvBackend for RedbBackend {
    type Snapshot = RedbSnapshot;

    /// An empty commit to the active recent database that saves redb's
    /// allocator state (quick repair, one more fsync): while it is that
    /// database's last commit, opening after a crash loads the state
    /// instead of walking the trees. The main database saves it at every
    /// commit.
    fn settle(&self) -> Result<(), StoreError> {
        let shared = self.shared()?;
        let _writing = lock(&shared.writing);
        let active = lock(&shared.roles).active;
        let mut txn = shared.recent[active].begin_write().map_err(backend_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        txn.set_quick_repair(true);
        txn.commit().map_err(backend_error)
    }

    fn snapshot(&self) -> Result<RedbSnapshot, StoreError> {
        self.shared()?.snapshot()
    }

    fn failure(&self) -> Option<StoreError> {
        match self.shared() {
            Ok(shared) => shared.check_merges().err(),
            Err(error) => Some(error),
        }
    }

    /// Closes the three databases (read views still open on them fail from
    /// then on) and opens them again: redb checks each one's last commit
    /// and, after a failure, walks its trees; a frozen database is merged
    /// again. Waits for a write transaction in hand.
    fn recover(&self) -> Result<(), StoreError> {
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = open.take() {
            // Held so that no write transaction is in hand while it closes.
            let shared = Arc::clone(&old.shared);
            let writing = lock(&shared.writing);
            old.close();
            drop(writing);
            // The last reference: the databases close, releasing their locks.
            drop(shared);
        }
        let (main, recent) = (self.opener)()?;
        *open = Some(Open::start(main, recent, self.options)?);
        Ok(())
    }

    fn commit(&self, batch: KvBatch) -> Result<(), StoreError> {
        self.transact(TxnSize::Batch, |writer| {
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

    /// A batch is gathered in memory over a read view and committed to the
    /// active recent database. A bulk transaction first has both recent
    /// databases merged, then runs in one write transaction of the main
    /// database: redb bounds the dirty pages it keeps in memory (its write
    /// buffer, part of `CACHE_BYTES`) and writes the rest to free space in
    /// the file, which no committed root references until the commit; so
    /// memory does not grow with what `work` writes, and a crash before the
    /// commit's header flip leaves the last commit as it was.
    fn transact<T, E: From<StoreError>>(
        &self,
        size: TxnSize,
        work: impl FnOnce(&mut dyn KvWriter) -> Result<T, E>,
    ) -> Result<T, E> {
        let shared = &self.shared()?;
        let _writing = lock(&shared.writing);
        shared.check_merges()?;
        if size == TxnSize::Batch {
            let mut writer = Overlay::new(shared.snapshot()?);
            let done = work(&mut writer)?;
            let writes = writer.into_writes();
            if writes.iter().any(|table| !table.is_empty()) {
                shared.commit_recent(&writes)?;
            }
            return Ok(done);
        }
        shared.drain()?;
        // Begun before the write, it sees the database as the transaction
        // finds it: what `BulkWriter` reads of keys it has not written.
        let base = Layer::begin(&shared.main, false)?;
        let mut txn = shared.main.begin_write().map_err(backend_error)?;
        // Immediate is redb's default; set it so that no future default can
        // weaken what `commit` promises.
        txn.set_durability(Durability::Immediate)
            .map_err(backend_error)?;
        let done = {
            let tables = bulk::Tables::new(
                Table::ALL
                    .iter()
                    .map(|&table| txn.open_table(definition(table)).map_err(backend_error))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let applier = if shared.options.background {
                bulk::Applier::Thread
            } else {
                bulk::Applier::Inline
            };
            std::thread::scope(|scope| {
                let mut writer = bulk::BulkWriter::new(
                    scope,
                    &tables,
                    base,
                    applier,
                    shared.options.bulk_batch_bytes,
                );
                let done = work(&mut writer)?;
                writer.finish()?;
                Ok::<_, E>(done)
            })?
        };
        // Like every commit of the main database, it saves the allocator
        // state (set at the end: it changes nothing before the commit).
        txn.set_quick_repair(true);
        // An error above drops the transaction uncommitted: redb aborts it.
        txn.commit().map_err(backend_error)?;
        Ok(done)
    }
}

/// One database of a read view: a read transaction, and its tables opened
/// as they are first read (a point read needs two or three of them, and
/// opening each costs a look-up in the database's table tree).
struct Layer {
    /// Indexed by [`Table`] position.
    tables: [OnceLock<ReadOnlyTable<Bytes, Bytes>>; Table::ALL.len()],
    /// A recent database (tagged values), or the main one.
    recent: bool,
    txn: ReadTransaction,
}

impl Layer {
    fn begin(db: &Database, recent: bool) -> Result<Layer, StoreError> {
        let txn = db.begin_read().map_err(backend_error)?;
        Ok(Layer {
            tables: Default::default(),
            recent,
            txn,
        })
    }

    fn table(&self, table: Table) -> Result<&ReadOnlyTable<Bytes, Bytes>, StoreError> {
        let slot = self
            .tables
            .get(table.position())
            .ok_or_else(|| StoreError::Corrupt(format!("table {} not known", table.name())))?;
        if let Some(open) = slot.get() {
            return Ok(open);
        }
        let open = self
            .txn
            .open_table(definition(table))
            .map_err(backend_error)?;
        // Another thread may have opened it meanwhile: either is the same
        // table of the same transaction.
        Ok(slot.get_or_init(|| open))
    }

    /// The value at `key` if this layer has a row for it: `Some(None)` for
    /// a tombstone.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let Some(stored) = self.table(table)?.get(key).map_err(backend_error)? else {
            return Ok(None);
        };
        Ok(Some(self.value(stored.value())?.map(<[u8]>::to_vec)))
    }

    /// What a stored value stands for (`None`: deleted).
    fn value<'v>(&self, stored: &'v [u8]) -> Result<Option<&'v [u8]>, StoreError> {
        if self.recent {
            untag(stored)
        } else {
            Ok(Some(stored))
        }
    }
}

/// A consistent read view of the three databases: redb read transactions
/// of the active recent database, the frozen one if any, and the main one,
/// newest first.
pub struct RedbSnapshot {
    layers: Vec<Layer>,
}

impl std::fmt::Debug for RedbSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSnapshot")
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

type Row = (
    redb::AccessGuard<'static, Bytes>,
    redb::AccessGuard<'static, Bytes>,
);

/// One layer's rows in a scan, with the next one read ahead.
struct Cursor<'l> {
    layer: &'l Layer,
    rows: Box<dyn Iterator<Item = Result<Row, redb::StorageError>> + 'l>,
    next: Option<Row>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> Result<(), StoreError> {
        self.next = self.rows.next().transpose().map_err(backend_error)?;
        Ok(())
    }

    fn key(&self) -> Option<&[u8]> {
        self.next.as_ref().map(|(key, _)| key.value())
    }
}

impl KvSnapshot for RedbSnapshot {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        for layer in &self.layers {
            if let Some(value) = layer.get(table, key)? {
                return Ok(value);
            }
        }
        Ok(None)
    }

    /// Merges the layers' ranges: of the rows with one key, the newest
    /// layer's stands, and a tombstone hides the key.
    fn scan(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let mut cursors = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let open = layer.table(table)?;
            let range = match end {
                Some(end) => open.range::<&[u8]>(start..end),
                None => open.range::<&[u8]>(start..),
            }
            .map_err(backend_error)?;
            let rows: Box<dyn Iterator<Item = _>> = if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            let mut cursor = Cursor {
                layer,
                rows,
                next: None,
            };
            cursor.advance()?;
            cursors.push(cursor);
        }
        loop {
            // The first key in scan order; of the layers that have it, the
            // newest (first) one.
            let mut first: Option<usize> = None;
            for (at, cursor) in cursors.iter().enumerate() {
                let Some(key) = cursor.key() else { continue };
                let earlier = match first.and_then(|f| cursors[f].key()) {
                    None => true,
                    Some(best) if reverse => key > best,
                    Some(best) => key < best,
                };
                if earlier {
                    first = Some(at);
                }
            }
            let Some(first) = first else {
                return Ok(());
            };
            let Some((key, stored)) = cursors[first].next.take() else {
                return Ok(());
            };
            cursors[first].advance()?;
            for cursor in cursors.iter_mut().skip(first + 1) {
                if cursor.key() == Some(key.value()) {
                    cursor.advance()?;
                }
            }
            if let Some(value) = cursors[first].layer.value(stored.value())?
                && !visit(key.value(), value)?
            {
                return Ok(());
            }
        }
    }
}
