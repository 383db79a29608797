//! Opening a store, and reopening it after a failed write: the files
//! brought to what the database says is durable, and each tree checked
//! against its last signed checkpoint and the last one published.

use std::sync::Arc;

use regis_merkle::Frontier;
use regis_model::PerLog;

use super::{Store, TAIL_BYTES, TreeHead, Unsynced, Writer, tail_key};
use crate::StoreError;
use crate::field_index::Runs;
use crate::files::Files;
use crate::keys::{self, FORMAT_VERSION, Head, META_FIELD_RUNS, META_FORMAT, META_HEAD, corrupt};
use crate::kv::{KvBackend, KvBatch, KvSnapshot, Table};
use crate::published::Published;

/// The state of the last durable commit, as opening finds it.
struct Durable {
    head: Head,
    runs: Runs,
    trees: PerLog<Frontier>,
    /// The logged appends written back, whose rows are still to delete.
    unsynced: Unsynced,
    published: Published,
}

impl<B: KvBackend> Store<B> {
    /// Opens a register's database and files, initialising empty ones.
    /// Cuts the files back to the lengths of the last commit (a transaction
    /// that never committed may have written past them), and refuses (with
    /// [`StoreError::Corrupt`]) a store whose files are shorter than that or
    /// whose tree does not match its last signed checkpoint; the check reads
    /// `O(log n)` hashes and replays nothing.
    pub fn open(kv: B, files: Files) -> Result<(Store<B>, Writer<B>), StoreError> {
        let snapshot = kv.snapshot()?;
        match snapshot.get(Table::Meta, META_FORMAT)? {
            None => {
                if snapshot.get(Table::Meta, META_HEAD)?.is_some() {
                    return Err(corrupt("meta/head without meta/format"));
                }
                drop(snapshot);
                let mut batch = KvBatch::new();
                batch.put(
                    Table::Meta,
                    META_FORMAT.to_vec(),
                    FORMAT_VERSION.to_be_bytes().to_vec(),
                );
                batch.put(Table::Meta, META_HEAD.to_vec(), Head::default().encode());
                batch.put(
                    Table::Meta,
                    META_FIELD_RUNS.to_vec(),
                    Runs::default().encode(),
                );
                kv.commit(batch)?;
            }
            Some(format) => {
                let found = <[u8; 4]>::try_from(format.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| corrupt("meta/format is not 4 bytes"))?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
        }
        let store = Store {
            kv: Arc::new(kv),
            files,
            items: Arc::default(),
            item_filter_build: Arc::default(),
            health: Arc::default(),
            proofs: Arc::default(),
            latest: Arc::default(),
        };
        let mut durable = store.durable()?;
        if !durable.unsynced.rows.is_empty() {
            // The files are synced: the log of their tails can go.
            let mut batch = KvBatch::new();
            for key in &durable.unsynced.rows {
                batch.delete(Table::FileTails, key.to_vec());
            }
            store.kv.commit(batch)?;
            store.latest.committed();
            durable.unsynced = Unsynced::default();
        }
        let writer = Writer {
            store: store.clone(),
            trees: durable.trees,
            records: durable.head.records,
            data: durable.head.data,
            runs: durable.runs,
            unsynced: durable.unsynced,
            tail_bytes: TAIL_BYTES,
            unsettled: false,
            failed: None,
            published: durable.published,
        };
        Ok((store, writer))
    }

    /// Brings the files to what the database says is durable (writing
    /// back logged appends, cutting off what no commit names) and checks
    /// each tree against its last signed checkpoint: what opening does, and
    /// recovering from a failed write.
    fn durable(&self) -> Result<Durable, StoreError> {
        let store = self;
        let snapshot = store.snapshot()?;
        let mut tails = Vec::new();
        snapshot
            .kv
            .scan(Table::FileTails, &[], None, false, &mut |key, bytes| {
                let (&slot, offset) = key
                    .split_first()
                    .ok_or_else(|| corrupt("an empty file tail key"))?;
                tails.push((
                    slot,
                    keys::read_u64(offset, "file tail key")?,
                    bytes.to_vec(),
                ));
                Ok(true)
            })?;
        store.files.replay_tails(&tails)?;
        // The files are synced; the rows that logged their tails go (on
        // open, at once; after a failure, with the next commit that syncs,
        // so that reopening needs no free space).
        let unsynced = Unsynced {
            files: 0,
            bytes: tails.iter().map(|(_, _, bytes)| bytes.len() as u64).sum(),
            rows: tails
                .iter()
                .map(|(slot, offset, _)| tail_key(*slot, *offset))
                .collect(),
        };
        let mut trees = PerLog::<Frontier>::default();
        for log in PerLog::<Frontier>::LOGS {
            let hashes = snapshot.hashes(log);
            let size = snapshot.size(log);
            trees[log] = Frontier::from_reader(&hashes, size)?;
            if let Some(checkpoint) = snapshot.checkpoint(log)? {
                if checkpoint.size > size {
                    return Err(corrupt(format!(
                        "the {log} checkpoint is for size {}, but the tree has {size} entries",
                        checkpoint.size
                    )));
                }
                let signed = Frontier::from_reader(&hashes, checkpoint.size)?;
                if signed.root() != checkpoint.root {
                    return Err(corrupt(format!(
                        "the stored {log} tree at size {} does not match its signed checkpoint",
                        checkpoint.size
                    )));
                }
            }
        }
        // The trees must reach what was published, whatever the database
        // says: a store that lost acknowledged entries is not served (nor
        // signed over), and is refused before its files are cut.
        let published = Published::read(store.files.published())?.unwrap_or_default();
        for (log, frontier) in trees.iter() {
            let (size, root) = published.tree(log);
            if size > frontier.size() {
                return Err(corrupt(format!(
                    "the {log} checkpoint of size {size} was published, but the store holds \
                     {} entries: acknowledged entries are missing",
                    frontier.size()
                )));
            }
            if size > 0 && Frontier::from_reader(&snapshot.hashes(log), size)?.root() != root {
                return Err(corrupt(format!(
                    "the stored {log} tree at size {size} does not match the checkpoint \
                     published at that size"
                )));
            }
        }
        store.files.recover(&snapshot.head, &snapshot.runs)?;
        Ok(Durable {
            head: snapshot.head,
            runs: snapshot.runs.clone(),
            trees,
            unsynced,
            published,
        })
    }
}

impl<B: KvBackend> Writer<B> {
    /// Reopens the store after a failed write (the "fsyncgate" rule: a
    /// failed write or sync leaves the files' unsynced state unknown, so
    /// nothing is retried as if it were safe): the database is reopened
    /// from what is durable, the logged appends are written back and
    /// synced, the files are cut to their committed lengths, and the
    /// trees are checked against their checkpoints, as on open. The
    /// writer then stands at the last durable commit, which may be the
    /// one that reported the failure.
    pub fn recover(&mut self) -> Result<PerLog<TreeHead>, StoreError> {
        // A build's scan holds the database open, which reopening closes.
        self.store.item_filter_build.stop();
        // The kept snapshot holds the databases open, which reopening
        // closes; one made meanwhile reads the closed ones.
        self.store.latest.committed();
        self.store.kv.recover()?;
        self.store.latest.committed();
        let durable = self.store.durable()?;
        // And those made while the files were brought back.
        self.store.latest.committed();
        self.trees = durable.trees;
        self.records = durable.head.records;
        self.data = durable.head.data;
        self.runs = durable.runs;
        self.unsynced = durable.unsynced;
        self.published = durable.published;
        self.failed = None;
        Ok(PerLog::from_fn(|log| self.head(log)))
    }
}
