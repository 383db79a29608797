//! One conformance suite, run against every backend: each `fn` below is
//! generic over the backend and instantiated per backend by `conformance!`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use crate::common::{
    Model, assert_matches, digest, document_name, files, item, new_entry, rsf_commands, sha256,
};
use regis_merkle::{EMPTY_ROOT, Frontier, leaf_hash};
use regis_model::rsf::Policy;
use regis_model::{Log, PerLog, RegisterName};
use regis_note::{SignedCheckpoint, Verifiers};
use regis_store::KvSnapshot;
use regis_store::{
    Batch, BatchError, DirBackend, KvBackend, KvBatch, Receipt, Registry, Request, Sequencer,
    SequencerConfig, SequencerError, SignedTree, Store, StoreError, Table, system_clock,
};

type Open<B> = fn(&Path) -> B;

/// `open` as the registry takes a backend opener.
fn opened<B>(open: Open<B>) -> impl FnOnce(&Path) -> Result<B, regis_store::StoreError> {
    move |dir| Ok(open(dir))
}

/// Appends `count` user entries over a rotating set of keys (so records
/// are updated and field-index rows move), and a system entry every tenth.
fn append_many(model: &mut Model, batch: &mut Batch, count: usize, round: usize) {
    for i in 0..count {
        let key = format!("key-{:03}", (i * 7 + round) % 37);
        let name = format!("name-{}", (i + round) % 11);
        let tags = [["red", "green"], ["green", "blue"], ["blue", "red"]][i % 3];
        model.append(batch, Log::User, &key, &name, &tags);
        if i % 10 == 0 {
            let key = format!("field:f{}", i % 4);
            model.append(batch, Log::System, &key, &format!("f{i}"), &[]);
        }
    }
}

fn empty_store_serves_nothing<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    assert_eq!(writer.head(Log::User).root, EMPTY_ROOT);
    assert_matches(&store, &Model::default());
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.checkpoint(Log::User).unwrap(), None);
    assert_eq!(snapshot.root(Log::System).unwrap(), EMPTY_ROOT);
}

fn commits_serve_every_read<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut model = Model::default();
    // Batches of uneven sizes cross tile boundaries (256, 512) mid-batch.
    for (round, count) in [1, 2, 200, 60, 300, 1].into_iter().enumerate() {
        let mut batch = Batch::new();
        append_many(&mut model, &mut batch, count, round);
        let PerLog { user, system } = writer.commit(&batch).unwrap();
        assert_eq!(user.size, model.size(Log::User));
        assert_eq!(user.root, model.root(Log::User));
        assert_eq!(system.root, model.root(Log::System));
        assert_matches(&store, &model);
    }
}

fn reopen_serves_the_same<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let before = {
        let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
        let mut batch = Batch::new();
        append_many(&mut model, &mut batch, 270, 0);
        let PerLog { user, .. } = writer.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch.set_checkpoint(
            Log::User,
            SignedTree {
                size: user.size,
                root: user.root,
                text: "example.com/registers/test\n270\n…\n\n— sig\n".to_owned(),
            },
        );
        writer.commit(&batch).unwrap();
        digest(&store.snapshot().unwrap())
    };
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    assert_eq!(digest(&store.snapshot().unwrap()), before);
    assert_matches(&store, &model);
    // The reopened writer carries on the same trees.
    let mut batch = Batch::new();
    append_many(&mut model, &mut batch, 30, 5);
    let PerLog { user, system } = writer.commit(&batch).unwrap();
    assert_eq!(user.root, model.root(Log::User));
    assert_eq!(system.root, model.root(Log::System));
    assert_matches(&store, &model);
}

fn refused_batches_write_nothing<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut model = Model::default();
    let mut batch = Batch::new();
    append_many(&mut model, &mut batch, 20, 0);
    writer.commit(&batch).unwrap();
    let before = digest(&store.snapshot().unwrap());

    // Each batch below is valid up to its last step, which is not.
    let mut bad = model.clone();
    let mut batch = Batch::new();
    append_many(&mut bad, &mut batch, 10, 1);
    let missing = sha256(b"{}");
    let number = bad.size(Log::User) + 1;
    batch.add_entry(new_entry(Log::User, number, "k", &missing));
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::MissingItem { .. }))
    ));

    let mut batch = Batch::new();
    append_many(&mut model.clone(), &mut batch, 10, 1);
    batch.add_entry(new_entry(Log::User, 1, "k", &missing));
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::EntryNumber {
            expected: 31,
            ..
        }))
    ));

    let mut batch = Batch::new();
    append_many(&mut model.clone(), &mut batch, 3, 1);
    batch.add_item([7; 32], item("x", &[]));
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::ItemHash(_)))
    ));

    let mut batch = Batch::new();
    let nested = br#"{"a":{"b":"c"}}"#.to_vec();
    batch.add_item(sha256(&nested), nested);
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::ItemShape(_)))
    ));

    let mut batch = Batch::new();
    let json = item("long", &[]);
    let hash = sha256(&json);
    batch.add_item(hash, json);
    batch.add_entry(new_entry(
        Log::System,
        model.size(Log::System) + 1,
        &"k".repeat(65_536),
        &hash,
    ));
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::LeafTooLong { .. }))
    ));

    let mut batch = Batch::new();
    append_many(&mut model.clone(), &mut batch, 3, 1);
    batch.set_checkpoint(
        Log::User,
        SignedTree {
            size: model.size(Log::User),
            root: model.root(Log::User),
            text: "stale".into(),
        },
    );
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::CheckpointSize { .. }))
    ));
    let mut batch = Batch::new();
    batch.set_checkpoint(
        Log::User,
        SignedTree {
            size: model.size(Log::User),
            root: [1; 32],
            text: "wrong root".into(),
        },
    );
    assert!(matches!(
        writer.commit(&batch),
        Err(StoreError::Batch(BatchError::CheckpointRoot { .. }))
    ));

    assert_eq!(digest(&store.snapshot().unwrap()), before);
    assert_eq!(writer.head(Log::User).root, model.root(Log::User));
    // And the writer still appends where it was.
    let mut batch = Batch::new();
    append_many(&mut model, &mut batch, 5, 9);
    writer.commit(&batch).unwrap();
    assert_matches(&store, &model);
}

fn snapshots_do_not_move<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut model = Model::default();
    let mut batch = Batch::new();
    model.append(&mut batch, Log::User, "a", "alpha", &["old"]);
    model.append(&mut batch, Log::User, "b", "beta", &["old"]);
    writer.commit(&batch).unwrap();
    let old = store.snapshot().unwrap();
    let old_digest = digest(&old);
    // Reads between two commits share one snapshot.
    assert!(Arc::ptr_eq(&old, &store.snapshot().unwrap()));

    let mut batch = Batch::new();
    model.append(&mut batch, Log::User, "a", "alpha", &["new"]);
    model.append(&mut batch, Log::User, "c", "gamma", &["new"]);
    model.append(&mut batch, Log::System, "name", "test", &[]);
    writer.commit(&batch).unwrap();
    let mut batch = Batch::new();
    batch.set_checkpoint(
        Log::User,
        SignedTree {
            size: 4,
            root: model.root(Log::User),
            text: "signed after the snapshot".into(),
        },
    );
    writer.commit(&batch).unwrap();

    // A read after a commit sees it.
    let new = store.snapshot().unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(new.size(Log::User), 4);
    assert_eq!(new.checkpoint(Log::User).unwrap().unwrap().size, 4);
    // Sizes, entries, records, history and the record count stay as they
    // were when the snapshot began.
    assert_eq!(digest(&old), old_digest);
    assert_eq!(old.record(Log::User, "a").unwrap().unwrap().entry_number, 1);
    assert_eq!(old.record(Log::User, "c").unwrap(), None);
    assert_eq!(old.history(Log::User, "a", 0, 10).unwrap().len(), 1);
    assert_eq!(old.record_count(), 2);
    assert_eq!(old.entry(Log::User, 3).unwrap(), None);
    assert_eq!(old.checkpoint(Log::User).unwrap(), None);
    // No record is reported with a value it did not have at the snapshot.
    assert!(
        old.records_by_field("tags", "new", 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_matches(&store, &model);
}

/// Readers racing a writer (and, on redb, the merges its commits set off)
/// only ever see the state after some whole commit.
fn concurrent_readers_see_whole_commits<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut model = Model::default();
    let mut states = vec![digest(&store.snapshot().unwrap())];
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(digest(&store.snapshot().unwrap()));
            }
            seen
        });
        for round in 0..40 {
            let mut batch = Batch::new();
            append_many(&mut model, &mut batch, 1 + round % 7, round);
            writer.commit(&batch).unwrap();
            states.push(digest(&store.snapshot().unwrap()));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(!seen.is_empty());
    for state in &seen {
        assert!(
            states.contains(state),
            "a reader saw a state no commit left:\n{state}"
        );
    }
    assert_matches(&store, &model);
    drop((store, writer));
    let (store, _) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    assert_matches(&store, &model);
}

/// The item filter (`item_filter.rs`) is built from a scan while commits
/// go on: no item a commit stored is ever reported missing, before, during
/// or after the build, and items never stored are reported missing.
fn items_stay_found_while_the_item_filter_is_built<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut stored = Vec::new();
    let commit_round = |writer: &mut regis_store::Writer<B>,
                        stored: &mut Vec<regis_merkle::Hash>,
                        round: usize| {
        let mut batch = Batch::new();
        let mut number = writer.head(Log::User).size;
        for i in 0..25 {
            let json = item(&format!("round {round} item {i}"), &["red"]);
            let hash = sha256(&json);
            number += 1;
            batch.add_item(hash, json);
            batch.add_entry(new_entry(
                Log::User,
                number,
                &format!("k{round}-{i}"),
                &hash,
            ));
            stored.push(hash);
        }
        writer.commit(&batch).unwrap();
    };
    let check = |stored: &[regis_merkle::Hash], round: usize| {
        let snapshot = store.snapshot().unwrap();
        let recent = stored.len().saturating_sub(25);
        for (at, hash) in stored.iter().enumerate() {
            if at >= recent || at % 37 == round % 37 {
                assert!(
                    snapshot.has_item(hash).unwrap(),
                    "round {round}: item {at} lost"
                );
            }
        }
        let never = sha256(format!("never stored {round}").as_bytes());
        assert!(!snapshot.has_item(&never).unwrap());
    };
    for round in 0..10 {
        commit_round(&mut writer, &mut stored, round);
    }
    // On its own thread (0: however small the register), racing the commits.
    assert!(store.start_item_filter(0), "a build starts");
    let mut built_at = None;
    for round in 10..400 {
        commit_round(&mut writer, &mut stored, round);
        check(&stored, round);
        if store.item_filter_built() {
            let built = *built_at.get_or_insert(round);
            if round >= built + 20 {
                break;
            }
        }
        if built_at.is_none() && round % 10 == 0 {
            // Let the build's thread run on a busy machine.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert!(built_at.is_some(), "the filter was never built");
    assert!(!store.start_item_filter(0), "it fits: no other build");
    // Every item, through the filter.
    let snapshot = store.snapshot().unwrap();
    assert!(stored.iter().all(|hash| snapshot.has_item(hash).unwrap()));
    let never = sha256(b"never stored");
    assert!(!snapshot.has_item(&never).unwrap());
    drop((snapshot, store, writer));
    // Without one (a store just opened), the same answers.
    let (store, _) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    assert!(!store.item_filter_built());
    let snapshot = store.snapshot().unwrap();
    assert!(stored.iter().all(|hash| snapshot.has_item(hash).unwrap()));
    // A small register's filter is built inline: there when the call returns.
    assert!(store.start_item_filter(u64::MAX));
    assert!(store.item_filter_built());
    assert!(stored.iter().all(|hash| snapshot.has_item(hash).unwrap()));
    assert!(!snapshot.has_item(&never).unwrap());
}

/// A backend whose `items` table, scanned to its end, starts over: an
/// item-filter build's scan of it ends only when the build is stopped. It
/// says when such a scan begins, and when it is dropped.
struct EndlessItems<B> {
    inner: B,
    scanning: Sender<()>,
    dropped: Arc<AtomicBool>,
}

struct EndlessItemsSnapshot<S> {
    inner: S,
    scanning: Sender<()>,
}

impl<B> Drop for EndlessItems<B> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl<B: KvBackend> KvBackend for EndlessItems<B> {
    type Snapshot = EndlessItemsSnapshot<B::Snapshot>;

    fn snapshot(&self) -> Result<Self::Snapshot, StoreError> {
        Ok(EndlessItemsSnapshot {
            inner: self.inner.snapshot()?,
            scanning: self.scanning.clone(),
        })
    }

    fn settle(&self) -> Result<(), StoreError> {
        self.inner.settle()
    }

    fn failure(&self) -> Option<StoreError> {
        self.inner.failure()
    }

    fn recover(&self) -> Result<(), StoreError> {
        self.inner.recover()
    }

    fn commit(&self, batch: KvBatch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }

    fn transact<T, E: From<StoreError>>(
        &self,
        size: regis_store::TxnSize,
        work: impl FnOnce(&mut dyn regis_store::KvWriter) -> Result<T, E>,
    ) -> Result<T, E> {
        self.inner.transact(size, work)
    }
}

impl<S: KvSnapshot> KvSnapshot for EndlessItemsSnapshot<S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key)
    }

    fn scan(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut regis_store::Visit<'_>,
    ) -> Result<(), StoreError> {
        if table != Table::Items {
            return self.inner.scan(table, start, end, reverse, visit);
        }
        // The test reads the message only for the builds it starts.
        let _ = self.scanning.send(());
        loop {
            let mut more = true;
            self.inner
                .scan(table, start, end, reverse, &mut |key, value| {
                    more = visit(key, value)?;
                    Ok(more)
                })?;
            if !more {
                return Ok(());
            }
        }
    }
}

/// An item-filter build's thread belongs to its store: reopening the
/// store after a failed write (`Writer::recover`) stops the build and
/// joins the thread, and so does dropping the store, so that no thread is
/// left holding the database open (a reopen then finds it free).
fn item_filter_builds_end_with_their_store<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (scanning, scans) = std::sync::mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let kv = EndlessItems {
        inner: open(dir.path()),
        scanning,
        dropped: Arc::clone(&dropped),
    };
    let (store, mut writer) = Store::open(kv, files(dir.path())).unwrap();
    let json = item("the only item", &["red"]);
    let hash = sha256(&json);
    let mut batch = Batch::new();
    batch.add_item(hash, json);
    batch.add_entry(new_entry(Log::User, 1, "k", &hash));
    writer.commit(&batch).unwrap();
    // On its own thread, scanning until stopped.
    assert!(store.start_item_filter(0), "a build starts");
    scans.recv().unwrap();
    // Reopening stops the build first, also where the backend then cannot
    // reopen itself (sled: a restart does).
    if let Err(error) = writer.recover() {
        assert!(
            error.to_string().contains("cannot reopen itself"),
            "{error}"
        );
    }
    assert!(
        !store.item_filter_built(),
        "a stopped build publishes nothing"
    );
    assert!(
        store.start_item_filter(0),
        "the build was stopped: another starts"
    );
    scans.recv().unwrap();
    drop((store, writer));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the build's thread let go of the database before the store's drop returned"
    );
    let (store, _) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    assert!(store.snapshot().unwrap().has_item(&hash).unwrap());
}

fn open_refuses_a_tree_that_forks_from_its_checkpoint<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
        let mut model = Model::default();
        let mut batch = Batch::new();
        append_many(&mut model, &mut batch, 5, 0);
        writer.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch.set_checkpoint(
            Log::User,
            SignedTree {
                size: 5,
                root: model.root(Log::User),
                text: "signed".into(),
            },
        );
        writer.commit(&batch).unwrap();
    }
    // Opening writes back the small commits' logged appends and syncs the
    // files; what is changed after that is what the files alone hold.
    drop(Store::open(open(dir.path()), files(dir.path())).unwrap());
    let hashes_file = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("user.hashes"))
            .unwrap()
    };
    {
        // Rewrite the peak of the 4-leaf subtree behind the store's back.
        use std::os::unix::fs::FileExt;
        let position = regis_merkle::postorder::position(2, 0).unwrap();
        hashes_file().write_all_at(&[9; 32], position * 32).unwrap();
    }
    assert!(matches!(
        Store::open(open(dir.path()), files(dir.path())),
        Err(StoreError::Corrupt(_))
    ));
    {
        // Stored hashes cut off are refused too.
        let file = hashes_file();
        let len = file.metadata().unwrap().len();
        file.set_len(len - 32).unwrap();
    }
    assert!(matches!(
        Store::open(open(dir.path()), files(dir.path())),
        Err(StoreError::Corrupt(_))
    ));
}

fn open_checks_its_layout_version<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(open(dir.path()), files(dir.path())).unwrap());
    let kv = open(dir.path());
    let mut batch = KvBatch::new();
    // Version 1 lacked `system_positions`: refused, with what to do.
    batch.put(Table::Meta, b"format".to_vec(), 1u32.to_be_bytes().to_vec());
    kv.commit(batch).unwrap();
    let Err(error) = Store::open(kv, files(dir.path())) else {
        panic!("a version-1 store opened");
    };
    assert!(
        matches!(
            error,
            StoreError::Format {
                found: 1,
                expected: 4
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("regis load"), "{error}");
}

fn stored_hashes_are_exactly_the_frontiers<B: KvBackend>(open: Open<B>) {
    // Every (level, index) the frontier reports, and nothing else, is stored.
    let dir = tempfile::tempdir().unwrap();
    let kv = open(dir.path());
    let (store, mut writer) = Store::open(kv, files(dir.path())).unwrap();
    let mut model = Model::default();
    let mut batch = Batch::new();
    append_many(&mut model, &mut batch, 100, 0);
    writer.commit(&batch).unwrap();
    let mut expected = Vec::new();
    let mut frontier = Frontier::new();
    for l in &model.leaves[0] {
        frontier
            .push_hash(leaf_hash(l), |level, index, hash| {
                expected.push((level, index, *hash))
            })
            .unwrap();
    }
    let snapshot = store.snapshot().unwrap();
    let hashes = snapshot.hashes(Log::User);
    use regis_merkle::HashReader;
    for (level, index, hash) in &expected {
        assert_eq!(hashes.read_hash(*level, *index).unwrap(), *hash);
    }
    // Range reads: empty, one, across a level's end.
    let mut out = Vec::new();
    hashes.read_hashes(0, 5, 0, &mut out).unwrap();
    assert!(out.is_empty());
    hashes.read_hashes(0, 98, 2, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert!(hashes.read_hashes(0, 99, 2, &mut Vec::new()).is_err());
    let stored_per_level: Vec<u64> = (0..8u8)
        .map(|level| expected.iter().filter(|(l, _, _)| *l == level).count() as u64)
        .collect();
    for (level, count) in stored_per_level.iter().enumerate() {
        assert!(hashes.read_hash(level as u8, *count).is_err());
    }
    // The hash file holds exactly those, in post-order.
    let len = std::fs::metadata(dir.path().join("user.hashes"))
        .unwrap()
        .len();
    assert_eq!(len, expected.len() as u64 * 32);
}

/// Loads `files` in order, each as one request, into a new register of
/// backend `B`, and the same files into regis-model's in-memory register;
/// returns the store's register and the reference.
fn load_fixture<B: DirBackend>(
    open: Open<B>,
    data: &Path,
    files: &[&str],
) -> (
    regis_store::Register<B>,
    regis_model::Register,
    Vec<Receipt>,
) {
    let commands: Vec<_> = files.iter().map(|file| rsf_commands(file)).collect();
    let fallback = Path::new(files[0]).file_stem().unwrap().to_str().unwrap();
    let name = document_name(&commands[0], &fallback.to_lowercase().replace('_', "-"));
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new(&name).unwrap();
    let register = registry.create_with(&name, opened(open)).unwrap();
    let sequencer = Sequencer::spawn(
        name.as_str(),
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        system_clock(),
    )
    .unwrap();
    let handle = sequencer.handle();
    let mut reference = regis_model::Register::named(name.as_str());
    let mut receipts = Vec::new();
    for (file, commands) in files.iter().zip(commands) {
        receipts.push(
            handle
                .run(Request::Load {
                    commands,
                    policy: Policy::IMPORT,
                })
                .unwrap_or_else(|e| panic!("{file}: {e}")),
        );
        reference
            .load_rsf(regis_fixtures::read(file).as_slice(), Policy::IMPORT)
            .unwrap();
    }
    drop(handle);
    sequencer.join();
    // Reopen: what follows reads what is on disk.
    (
        registry.open_with(&name, opened(open)).unwrap(),
        reference,
        receipts,
    )
}

fn real_dumps_load_with_their_roots_and_records<B: DirBackend>(open: Open<B>) {
    let expected = regis_fixtures::read_json("registers/expected.json");
    for fixture in expected["rsf_roots"].as_array().unwrap() {
        let file = fixture["file"].as_str().unwrap();
        // The update applies on top of its base (expected.json's root is
        // the pair's).
        let files: Vec<String> = match file {
            "api-client/country_register_update.rsf" => vec![
                "registers/api-client/country_register.rsf".into(),
                format!("registers/{file}"),
            ],
            _ => vec![format!("registers/{file}")],
        };
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let data = tempfile::tempdir().unwrap();
        let (register, reference, receipts) = load_fixture(open, data.path(), &files);
        let receipt = receipts.last().unwrap();
        let snapshot = register.store.snapshot().unwrap();
        let root = regis_model::format_hash(&snapshot.root(Log::User).unwrap());
        let expected_root = match files.len() {
            1 => &fixture["v1_root_hash"],
            _ => &expected["incremental_rsf_pair"]["root_after_update"],
        };
        assert_eq!(root, expected_root.as_str().unwrap(), "{file}");
        assert_eq!(
            receipt.checkpoints.user.root,
            snapshot.root(Log::User).unwrap()
        );
        let user = snapshot.size(Log::User);
        let system = snapshot.size(Log::System);
        if files.len() == 1 {
            assert_eq!(user, fixture["user_entries"].as_u64().unwrap(), "{file}");
            assert_eq!(
                system,
                fixture["system_entries"].as_u64().unwrap(),
                "{file}"
            );
            assert_eq!(
                receipt.items_added,
                fixture["items"].as_u64().unwrap(),
                "{file}"
            );
            assert_eq!(
                receipt.assertions,
                fixture["assert_root_hash_lines_in_file"]
                    .as_array()
                    .unwrap()
                    .len() as u64
            );
        }
        // Both checkpoints are signed by the register's key, over the trees.
        for (log, checkpoint) in [
            (Log::User, &receipt.checkpoints.user),
            (Log::System, &receipt.checkpoints.system),
        ] {
            assert_eq!(snapshot.checkpoint(log).unwrap().as_ref(), Some(checkpoint));
            let parsed = SignedCheckpoint::parse(checkpoint.text.as_bytes()).unwrap();
            parsed
                .verify(
                    register.signers.origin(log),
                    &register.signers.verifier(log),
                    &Verifiers::default(),
                )
                .unwrap();
            assert_eq!(parsed.checkpoint().size(), snapshot.size(log));
            assert_eq!(
                parsed.checkpoint().root_hash(),
                &snapshot.root(log).unwrap()
            );
        }
        // Records, histories, entries and items are regis-model's.
        for log in [Log::User, Log::System] {
            assert_eq!(snapshot.size(log), reference.size(log));
            assert_eq!(snapshot.root(log).unwrap(), reference.root(log));
            let mut expected_records: Vec<_> = reference
                .records(log)
                .map(|r| (r.entry.key.clone(), r.number, r.entry.item_hashes[0].0))
                .collect();
            expected_records.sort();
            let records: Vec<_> = snapshot
                .records(log, 0, u64::MAX)
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.entry_number, r.item_hash))
                .collect();
            assert_eq!(records, expected_records, "{file} {log} records");
            for (key, _, _) in &records {
                let history: Vec<_> = reference
                    .history(log, key)
                    .map(|r| (r.number, r.entry.item_hashes[0].0))
                    .collect();
                assert_eq!(snapshot.history(log, key, 0, u64::MAX).unwrap(), history);
            }
            for (number, leaf) in snapshot.entries(log, 1, u64::MAX).unwrap() {
                let entry = &reference.entries(log)[number as usize - 1];
                assert_eq!(leaf, entry.leaf_bytes(number));
                let item = reference.item(&entry.item_hashes[0]).unwrap();
                assert_eq!(
                    snapshot.item(&entry.item_hashes[0].0).unwrap().unwrap(),
                    item.as_str().as_bytes()
                );
            }
        }
        assert_eq!(
            snapshot.record_count(),
            reference.records(Log::User).count() as u64
        );
    }
}

fn invalid_documents_change_nothing<B: DirBackend>(open: Open<B>) {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let name = RegisterName::new("register").unwrap();
    let register = registry.create_with(&name, opened(open)).unwrap();
    let store = register.store.clone();
    let sequencer = Sequencer::spawn(
        "register",
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        system_clock(),
    )
    .unwrap();
    let handle = sequencer.handle();
    let before = digest(&store.snapshot().unwrap());
    let negative = "registers/openregister-java/serialized-negative";
    // The fixture with a bad root is refused by the RSF reader already (its
    // hash is malformed); a valid document whose last line asserts a wrong
    // root reaches the sequencer.
    let file = format!("{negative}/register-register-rsf-invalid-root-hash.tsv");
    let bytes = regis_fixtures::read(&file);
    assert!(regis_model::rsf::RsfReader::new(bytes.as_slice()).any(|command| command.is_err()));
    let mut wrong_root = rsf_commands(&format!("{negative}/register-register-rsf.tsv"));
    wrong_root.push((5, regis_model::rsf::Command::AssertRootHash([0; 32])));
    for (file, commands, policy) in [
        ("a wrong assert-root-hash", wrong_root, Policy::IMPORT),
        (
            "register-register-orphan-rsf.tsv",
            rsf_commands(&format!("{negative}/register-register-orphan-rsf.tsv")),
            Policy::IMPORT_STRICT,
        ),
        (
            "register-register-invalid-entry-ordering.rsf",
            rsf_commands(&format!(
                "{negative}/register-register-invalid-entry-ordering.rsf"
            )),
            Policy::APPEND,
        ),
    ] {
        let result = handle.run(Request::Load { commands, policy });
        assert!(
            matches!(result, Err(SequencerError::Rejected(_))),
            "{file}: {result:?}"
        );
        assert_eq!(digest(&store.snapshot().unwrap()), before, "{file}");
    }
    // The valid one loads after them, on the same store.
    let commands = rsf_commands(&format!("{negative}/register-register-rsf.tsv"));
    let receipt = handle
        .run(Request::Load {
            commands,
            policy: Policy::IMPORT,
        })
        .unwrap();
    assert_eq!(receipt.appended.user, 2);
    assert_eq!(store.snapshot().unwrap().size(Log::User), 2);
    drop(handle);
    sequencer.join();
}

fn fsck_finds_what_is_wrong<B: DirBackend>(open: Open<B>) {
    let data = tempfile::tempdir().unwrap();
    let files = ["registers/api-client/country_register.rsf"];
    let (register, _, _) = load_fixture(open, data.path(), &files);
    let report = regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers).unwrap();
    assert_eq!(
        report.entries,
        PerLog {
            user: 7,
            system: 12
        }
    );
    assert_eq!(report.items, 19);
    assert_eq!(report.checkpoints, 2);
    assert!(report.field_rows > 0 && report.stored_hashes > 7);
    drop(register);

    let registry = Registry::new(data.path(), "regis.test");
    let name = RegisterName::new("country").unwrap();
    let dir = registry.dir(&name);
    let snapshot_of = |registry: &Registry| registry.open_with(&name, opened(open)).unwrap();
    // Rows as they are now, to change one at a time.
    let (record_key, record_value, field_key, items) = {
        let kv = open(&dir);
        let snapshot = kv.snapshot().unwrap();
        let rows = |table, count| {
            let mut rows = Vec::new();
            snapshot
                .scan(table, &[], None, false, &mut |k, v| {
                    rows.push((k.to_vec(), v.to_vec()));
                    Ok(rows.len() < count)
                })
                .unwrap();
            rows
        };
        let (record_key, record_value) = rows(Table::Records, 1).remove(0);
        let (field_key, _) = rows(Table::FieldIndex, 1).remove(0);
        (record_key, record_value, field_key, rows(Table::Items, 2))
    };
    // The first item's row pointing at the second item's bytes.
    let (item_key, item_value) = items[0].clone();
    let other_item = items[1].1.clone();
    let mut older = record_value.clone();
    older[7] ^= 1;
    // (what, table, key, tampered value or None to delete, original value)
    type Case = (&'static str, Table, Vec<u8>, Option<Vec<u8>>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "item",
            Table::Items,
            item_key.clone(),
            Some(other_item),
            item_value.clone(),
        ),
        (
            "record",
            Table::Records,
            record_key.clone(),
            Some(older),
            record_value.clone(),
        ),
        (
            "field row",
            Table::FieldIndex,
            field_key.clone(),
            None,
            Vec::new(),
        ),
        // The fixture's system entries all precede its user entries.
        (
            "system position out of order",
            Table::SystemPositions,
            1u64.to_be_bytes().to_vec(),
            Some(5u64.to_be_bytes().to_vec()),
            0u64.to_be_bytes().to_vec(),
        ),
        (
            "system position missing",
            Table::SystemPositions,
            12u64.to_be_bytes().to_vec(),
            None,
            0u64.to_be_bytes().to_vec(),
        ),
    ];
    for (what, table, key, tampered, original) in cases {
        let kv = open(&dir);
        let mut batch = KvBatch::new();
        match &tampered {
            Some(value) => batch.put(table, key.clone(), value.clone()),
            None => batch.delete(table, key.clone()),
        }
        kv.commit(batch).unwrap();
        drop(kv);
        let register = snapshot_of(&registry);
        let result = regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers);
        assert!(
            matches!(result, Err(regis_store::FsckError::Mismatch(_))),
            "{what}: {result:?}"
        );
        drop(register);
        // Put it back: fsck is clean again.
        let kv = open(&dir);
        let mut batch = KvBatch::new();
        batch.put(table, key, original);
        kv.commit(batch).unwrap();
        drop(kv);
        let register = snapshot_of(&registry);
        regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers)
            .unwrap_or_else(|e| panic!("after restoring the {what}: {e}"));
    }
    // Bytes of the files changed behind the store's back: (what, file,
    // offset, bytes written there).
    let data_len = std::fs::metadata(dir.join("data")).unwrap().len();
    let file_cases: [(&str, &str, u64, &[u8]); 4] = [
        ("stored hash", "user.hashes", 0, &[7; 32]),
        ("entry offset", "user.offsets", 8, &[0; 8]),
        ("the last entry's key", "data", data_len - 1, b"~"),
        ("a record frame", "data", 0, &[9]),
    ];
    for (what, file, offset, bytes) in file_cases {
        use std::os::unix::fs::FileExt;
        let path = dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let handle = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        handle.write_all_at(bytes, offset).unwrap();
        let register = snapshot_of(&registry);
        let result = regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers);
        assert!(result.is_err(), "{what}: {result:?}");
        drop(register);
        handle.write_all_at(&original, 0).unwrap();
        let register = snapshot_of(&registry);
        regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers)
            .unwrap_or_else(|e| panic!("after restoring {what}: {e}"));
    }
    // A field row naming no record.
    let kv = open(&dir);
    let mut batch = KvBatch::new();
    let mut stray = field_key.clone();
    stray[8..].copy_from_slice(&9999u64.to_be_bytes());
    batch.put(Table::FieldIndex, stray, Vec::new());
    kv.commit(batch).unwrap();
    drop(kv);
    let register = snapshot_of(&registry);
    assert!(regis_store::fsck(&register.store.snapshot().unwrap(), &register.signers).is_err());
}

/// Random batches (keys reused, items repeated, both logs) give what the
/// model gives, and the same again after reopening.
fn random_batches_match_the_model<B: KvBackend>(open: Open<B>) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    // One entry: (system log?, key, name, tags as a bit set).
    let entry = (any::<bool>(), 0..6u8, 0..3u8, 0..8u8);
    let batches = proptest::collection::vec(proptest::collection::vec(entry, 0..40), 1..6);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&batches, |batches| {
            let dir = tempfile::tempdir().unwrap();
            let mut model = Model::default();
            let before = {
                let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
                for batch_entries in &batches {
                    let mut batch = Batch::new();
                    for &(system, key, name, tags) in batch_entries {
                        let log = if system { Log::System } else { Log::User };
                        let tags: Vec<&str> = ["a", "b", "c"]
                            .iter()
                            .enumerate()
                            .filter(|(bit, _)| tags >> bit & 1 == 1)
                            .map(|(_, tag)| *tag)
                            .collect();
                        let key = format!("k{key}");
                        model.append(&mut batch, log, &key, &format!("n{name}"), &tags);
                    }
                    writer.commit(&batch).unwrap();
                }
                assert_matches(&store, &model);
                digest(&store.snapshot().unwrap())
            };
            let (store, _) = Store::open(open(dir.path()), files(dir.path())).unwrap();
            prop_assert_eq!(digest(&store.snapshot().unwrap()), before);
            Ok(())
        })
        .unwrap();
}

/// A transaction adding more field-index rows than the table takes (at
/// least 65,536) writes them as a run; later small commits add table rows
/// and leave run rows stale; queries, a reopen and fsck's completeness see
/// exactly the records that have each value.
fn large_transactions_index_fields_in_runs<B: KvBackend>(open: Open<B>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    let mut model = Model::default();
    let mut batch = Batch::new();
    // 4 rows an entry: a name and three tags.
    for i in 0..17_000 {
        let (a, b) = (format!("a{}", i % 3), format!("b{}", i % 5));
        let tags = [a.as_str(), b.as_str(), "c"];
        model.append(
            &mut batch,
            Log::User,
            &format!("k{i:05}"),
            &format!("n{}", i % 100),
            &tags,
        );
    }
    writer.commit(&batch).unwrap();
    let runs_file = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    assert_eq!(
        runs_file("fields.0"),
        17_000 * 4 * 16,
        "one run of every row"
    );
    // Small commits: a record changes its name (its run rows go stale), a
    // new record, and one back to a name it had.
    for (key, name) in [
        ("k00005", "n6"),
        ("new", "n5"),
        ("k00105", "n99"),
        ("k00105", "n5"),
    ] {
        let mut batch = Batch::new();
        model.append(&mut batch, Log::User, key, name, &["c"]);
        writer.commit(&batch).unwrap();
    }
    assert_eq!(
        runs_file("fields.0"),
        17_000 * 4 * 16,
        "small commits use the table"
    );
    let check = |store: &Store<B>| {
        let snapshot = store.snapshot().unwrap();
        for (field, value) in [
            ("name", "n5"),
            ("name", "n6"),
            ("name", "n99"),
            ("tags", "c"),
            ("tags", "b3"),
            ("name", "none"),
        ] {
            let expected = model.records_by_field(field, value);
            let found = snapshot
                .records_by_field(field, value, 0, u64::MAX)
                .unwrap();
            assert_eq!(found, expected, "{field} = {value}");
            // Pages over true matches only.
            let page = snapshot.records_by_field(field, value, 3, 7).unwrap();
            assert_eq!(
                page,
                expected.iter().skip(3).take(7).cloned().collect::<Vec<_>>()
            );
        }
    };
    check(&store);
    drop((store, writer));
    let (store, _) = Store::open(open(dir.path()), files(dir.path())).unwrap();
    check(&store);
}

/// A bulk transaction reads its own writes, whichever batch holds them
/// (gathered, being applied, applied) and over rows committed before it;
/// it commits them all, or (when its work fails) none. With small bulk
/// batches (`redb_merging*`) its reads cross many batches' applies.
fn bulk_transactions_read_their_own_writes<B: KvBackend>(open: Open<B>) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use regis_store::TxnSize;
    use std::collections::BTreeMap;
    // One step: (table, key, what: 0 get, 1 delete, else put that value).
    let step = (any::<bool>(), 0..400u16, 0..6u8);
    let steps = proptest::collection::vec(step, 1..1500);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let key = |n: u16| format!("key-{n:05}").into_bytes();
    runner
        .run(&steps, |steps| {
            let dir = tempfile::tempdir().unwrap();
            let kv = open(dir.path());
            let mut model: BTreeMap<(bool, Vec<u8>), Vec<u8>> = BTreeMap::new();
            let mut base = KvBatch::new();
            for n in (0..400).step_by(3) {
                for items in [false, true] {
                    let table = if items { Table::Items } else { Table::Records };
                    base.put(table, key(n), b"base".to_vec());
                    model.insert((items, key(n)), b"base".to_vec());
                }
            }
            kv.commit(base).unwrap();
            let before = model.clone();
            let table_of = |items: bool| if items { Table::Items } else { Table::Records };
            let run = |model: &mut BTreeMap<(bool, Vec<u8>), Vec<u8>>, fail: bool| {
                kv.transact(TxnSize::Bulk, |writer| {
                    for &(items, n, what) in &steps {
                        let (table, key) = (table_of(items), key(n));
                        match what {
                            0 => assert_eq!(
                                writer.get(table, &key)?,
                                model.get(&(items, key.clone())).cloned(),
                                "{table:?} {n}"
                            ),
                            1 => {
                                writer.delete(table, &key)?;
                                model.remove(&(items, key));
                            }
                            value => {
                                let value = vec![value; usize::from(n % 50)];
                                writer.put(table, &key, &value)?;
                                model.insert((items, key), value);
                            }
                        }
                    }
                    if fail {
                        return Err(StoreError::Corrupt("the work fails".into()));
                    }
                    Ok(())
                })
            };
            // Failed work leaves what was committed before.
            let mut failed = before.clone();
            assert!(run(&mut failed, true).is_err());
            let stored = |kv: &B| {
                let snapshot = kv.snapshot().unwrap();
                let mut rows = BTreeMap::new();
                for items in [false, true] {
                    for n in 0..400 {
                        if let Some(value) = snapshot.get(table_of(items), &key(n)).unwrap() {
                            rows.insert((items, key(n)), value);
                        }
                    }
                }
                rows
            };
            prop_assert_eq!(stored(&kv), before);
            run(&mut model, false).unwrap();
            prop_assert_eq!(stored(&kv), model);
            Ok(())
        })
        .unwrap();
}

macro_rules! conformance {
    ($backend:ident, $kv:ty, $open:expr) => {
        mod $backend {
            use super::*;
            const OPEN: Open<$kv> = $open;
            conformance!(@tests
                empty_store_serves_nothing,
                commits_serve_every_read,
                reopen_serves_the_same,
                refused_batches_write_nothing,
                snapshots_do_not_move,
                concurrent_readers_see_whole_commits,
                items_stay_found_while_the_item_filter_is_built,
                item_filter_builds_end_with_their_store,
                open_refuses_a_tree_that_forks_from_its_checkpoint,
                open_checks_its_layout_version,
                real_dumps_load_with_their_roots_and_records,
                random_batches_match_the_model,
                fsck_finds_what_is_wrong,
                invalid_documents_change_nothing,
                stored_hashes_are_exactly_the_frontiers,
                large_transactions_index_fields_in_runs,
                bulk_transactions_read_their_own_writes,
            );
        }
    };
    (@tests $($test:ident,)*) => {
        $(
            #[test]
            fn $test() {
                super::$test(OPEN)
            }
        )*
    };
}

conformance!(redb, regis_store::RedbBackend, |dir| {
    regis_store::RedbBackend::open_dir(dir).unwrap()
});
// redb merging its recent databases into the main one every commit or two,
// and applying bulk writes in batches of a few rows: in the committing
// thread, and on the merger's and the applier's threads.
conformance!(redb_merging, regis_store::RedbBackend, |dir| {
    let options = regis_store::RedbOptions {
        merge_bytes: 1 << 10,
        background: false,
        bulk_batch_bytes: 4 << 10,
    };
    regis_store::RedbBackend::open_dir_with(dir, options).unwrap()
});
conformance!(redb_merging_background, regis_store::RedbBackend, |dir| {
    let options = regis_store::RedbOptions {
        merge_bytes: 1,
        background: true,
        bulk_batch_bytes: 1 << 10,
    };
    regis_store::RedbBackend::open_dir_with(dir, options).unwrap()
});
#[cfg(feature = "sled")]
conformance!(sled, regis_store::SledBackend, |dir| {
    regis_store::SledBackend::open_dir(dir).unwrap()
});
