//! The sequencer: batching, validation, durability before signing, and
//! answers that carry the checkpoint covering them.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::rsf_commands;
use regis_merkle::{Hash, leaf_hash};
use regis_model::rsf::Policy;
use regis_model::{Entry, Item, Log, RegisterName, Timestamp};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_store::{
    Batch, Clock, NewEntry, Receipt, RedbBackend, Registry, Request, Sequencer, SequencerConfig,
    SequencerError, Store,
};

fn fixed_clock() -> Clock {
    Box::new(|| Timestamp::parse("2026-11-26T12:00:00Z").ok())
}

struct Country {
    sequencer: Sequencer,
    store: Store<RedbBackend>,
    origin: String,
    verifier: Verifier,
}

/// The api-client country register, loaded, with its sequencer running.
fn country(data: &Path, config: SequencerConfig) -> Country {
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new("country").unwrap();
    let register = if registry.exists::<RedbBackend>(&name) {
        registry.open::<RedbBackend>(&name).unwrap()
    } else {
        registry.create::<RedbBackend>(&name).unwrap()
    };
    let origin = register.signers.origin(Log::User).to_owned();
    let verifier = register.signers.verifier(Log::User);
    let store = register.store.clone();
    let sequencer = Sequencer::spawn(
        "country",
        register.store,
        register.writer,
        register.signers,
        config,
        fixed_clock(),
    )
    .unwrap();
    if store.snapshot().unwrap().size(Log::User) == 0 {
        sequencer
            .handle()
            .run(Request::Load {
                commands: rsf_commands("registers/api-client/country_register.rsf"),
                policy: Policy::IMPORT,
            })
            .unwrap();
    }
    Country {
        sequencer,
        store,
        origin,
        verifier,
    }
}

fn country_item(code: &str, name: &str) -> Item {
    Item::parse(&format!(r#"{{"country":"{code}","name":"{name}"}}"#)).unwrap()
}

/// The receipt's user checkpoint verifies, and covers each appended entry:
/// its leaf is in the signed tree at the number it was given.
fn assert_covered(country: &Country, receipt: &Receipt) {
    let checkpoint = &receipt.checkpoints.user;
    let parsed = SignedCheckpoint::parse(checkpoint.text.as_bytes()).unwrap();
    parsed
        .verify(&country.origin, &country.verifier, &Verifiers::default())
        .unwrap();
    assert_eq!(parsed.checkpoint().size(), checkpoint.size);
    let snapshot = country.store.snapshot().unwrap();
    let hashes = snapshot.hashes(Log::User);
    let edge = regis_merkle::Edge::from_reader(&hashes, checkpoint.size).unwrap();
    assert_eq!(&edge.root(), parsed.checkpoint().root_hash());
    for appended in &receipt.entries {
        assert!(appended.number <= checkpoint.size);
        let leaf = snapshot.entry(Log::User, appended.number).unwrap().unwrap();
        assert_eq!(leaf_hash(&leaf), appended.leaf_hash);
        let proof = regis_merkle::inclusion_proof(&hashes, &edge, appended.number - 1).unwrap();
        regis_merkle::verify_inclusion(
            &appended.leaf_hash,
            appended.number - 1,
            checkpoint.size,
            &proof,
            &edge.root(),
        )
        .unwrap();
        let record = snapshot.record(Log::User, &appended.key).unwrap().unwrap();
        assert!(record.entry_number >= appended.number);
    }
}

#[test]
fn appends_answer_with_a_signed_checkpoint_that_covers_them() {
    let data = tempfile::tempdir().unwrap();
    let country = country(data.path(), SequencerConfig::default());
    let handle = country.sequencer.handle();
    let mut watcher = handle.checkpoints();
    watcher.mark_unchanged();
    let before = country.store.snapshot().unwrap().size(Log::User);
    assert_eq!(watcher.borrow().user.size, before);
    let receipt = handle
        .run(Request::append(vec![
            ("ZZ".into(), country_item("ZZ", "Zedland")),
            ("ZY".into(), country_item("ZY", "Zyland")),
        ]))
        .unwrap();
    assert_eq!(
        receipt.entries.iter().map(|e| e.number).collect::<Vec<_>>(),
        vec![before + 1, before + 2]
    );
    assert_eq!(receipt.checkpoints.user.size, before + 2);
    assert_eq!(receipt.items_added, 2);
    assert_covered(&country, &receipt);
    // Subscribers see the new checkpoints.
    assert!(watcher.has_changed().unwrap());
    let published = handle.checkpoints();
    assert_eq!(published.borrow().user, receipt.checkpoints.user);
    assert_eq!(published.borrow().system, receipt.checkpoints.system);
    // The entry is stamped by the sequencer's clock and is regis-model's.
    let snapshot = country.store.snapshot().unwrap();
    let leaf = snapshot.entry(Log::User, before + 1).unwrap().unwrap();
    let item = country_item("ZZ", "Zedland");
    let timestamp = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    let entry = Entry::new(Log::User, "ZZ", timestamp, item.hash());
    assert_eq!(leaf, entry.leaf_bytes(before + 1));
    assert_eq!(
        snapshot
            .records_by_field("name", "Zedland", 0, 10)
            .unwrap()
            .len(),
        1
    );
    drop(handle);
    country.sequencer.join();
}

#[test]
fn concurrent_writers_are_batched_and_serialised() {
    writers_are_serialised(
        SequencerConfig {
            max_entries: 1000,
            max_delay: Duration::from_millis(100),
            queue: 4,
        },
        Batching::Asserted,
    );
}

#[test]
fn concurrent_writers_without_a_batching_delay_are_serialised() {
    // The default: no waiting. Whether requests share a batch is then up to
    // the scheduler, so only the order and the receipts are checked.
    let config = SequencerConfig::default();
    assert_eq!(config.max_delay, Duration::ZERO);
    writers_are_serialised(config, Batching::Unknown);
}

/// Whether a test may count on writers sharing commits.
#[derive(PartialEq)]
enum Batching {
    /// Writers arrive well within the batching delay.
    Asserted,
    /// No delay: the scheduler decides.
    Unknown,
}

fn writers_are_serialised(config: SequencerConfig, batching: Batching) {
    let data = tempfile::tempdir().unwrap();
    let country = country(data.path(), config);
    let before = country.store.snapshot().unwrap().size(Log::User);
    let threads: Vec<_> = (0..6)
        .map(|thread| {
            let handle = country.sequencer.handle();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let code = format!("Q{}{}", (b'A' + thread) as char, (b'A' + i) as char);
                        handle
                            .run(Request::append(vec![(
                                code.clone(),
                                country_item(&code, "Q"),
                            )]))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let receipts: Vec<Receipt> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let mut numbers: Vec<u64> = receipts
        .iter()
        .flat_map(|r| r.entries.iter().map(|e| e.number))
        .collect();
    numbers.sort();
    assert_eq!(numbers, (before + 1..=before + 60).collect::<Vec<_>>());
    for receipt in &receipts {
        assert_covered(&country, receipt);
    }
    if batching == Batching::Asserted {
        // Six writers waiting together share commits: fewer checkpoints
        // than requests, and receipts that tell so.
        let mut sizes: Vec<u64> = receipts.iter().map(|r| r.checkpoints.user.size).collect();
        sizes.sort();
        sizes.dedup();
        assert!(sizes.len() < receipts.len(), "{} batches", sizes.len());
        assert!(receipts.iter().any(|r| r.timing.batch_entries > 1));
    }
    // Each receipt tells the batch it rode in, and when it was durable.
    for receipt in &receipts {
        let timing = receipt.timing;
        assert!(timing.batch_entries >= 1);
        assert!(timing.queued <= timing.signed && timing.signed <= timing.durable);
    }
    country.sequencer.join();
}

#[test]
fn a_bad_request_fails_alone_in_its_batch() {
    let data = tempfile::tempdir().unwrap();
    let config = SequencerConfig {
        max_entries: 1000,
        max_delay: Duration::from_millis(300),
        queue: 8,
    };
    let country = country(data.path(), config);
    let handle = country.sequencer.handle();
    let before = country.store.snapshot().unwrap().size(Log::User);
    let good = handle
        .submit(Request::append(vec![(
            "QA".into(),
            country_item("QA", "A"),
        )]))
        .unwrap();
    // A field the register does not define, after an update of the record
    // the request before set and a new record: staged, then taken back.
    let unknown = Item::parse(r#"{"country":"QB","colour":"blue"}"#).unwrap();
    let bad = handle
        .submit(Request::append(vec![
            ("QA".into(), country_item("QA", "B")),
            ("QC".into(), country_item("QC", "C")),
            ("QB".into(), unknown),
        ]))
        .unwrap();
    // An item the record already has (GOV.UK refused these on append): the
    // failed request's update of QA is gone.
    let repeated = handle
        .submit(Request::append(vec![(
            "QA".into(),
            country_item("QA", "A"),
        )]))
        .unwrap();
    let also_good = handle
        .submit(Request::append(vec![(
            "QD".into(),
            country_item("QD", "D"),
        )]))
        .unwrap();
    let good = good.blocking_recv().unwrap().unwrap();
    let bad = bad.blocking_recv().unwrap();
    let repeated = repeated.blocking_recv().unwrap();
    let also_good = also_good.blocking_recv().unwrap().unwrap();
    assert!(matches!(bad, Err(SequencerError::Rejected(_))), "{bad:?}");
    assert!(
        matches!(repeated, Err(SequencerError::Rejected(_))),
        "{repeated:?}"
    );
    assert_eq!(good.entries[0].number, before + 1);
    assert_eq!(also_good.entries[0].number, before + 2);
    // One batch: both good requests are answered by the same checkpoint.
    assert_eq!(good.checkpoints.user, also_good.checkpoints.user);
    let snapshot = country.store.snapshot().unwrap();
    assert_eq!(snapshot.size(Log::User), before + 2);
    assert_eq!(snapshot.record(Log::User, "QC").unwrap(), None);
    assert_covered(&country, &good);
    drop(handle);
    country.sequencer.join();
}

#[test]
fn restart_signs_entries_no_checkpoint_covers() {
    let data = tempfile::tempdir().unwrap();
    let country_before = country(data.path(), SequencerConfig::default());
    let signed = country_before
        .store
        .snapshot()
        .unwrap()
        .checkpoint(Log::User)
        .unwrap()
        .unwrap();
    drop(country_before.store);
    country_before.sequencer.join();

    // A crash between a batch's two commits: entries durable, not signed.
    let registry = Registry::new(data.path(), "regis.test");
    let name = RegisterName::new("country").unwrap();
    let mut register = registry.open::<RedbBackend>(&name).unwrap();
    let item = country_item("QQ", "Q");
    let hash: Hash = item.hash().0;
    let number = signed.size + 1;
    let timestamp = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    let entry = Entry::new(Log::User, "QQ", timestamp, item.hash());
    let mut batch = Batch::new();
    batch.add_item(hash, item.as_str().as_bytes().to_vec());
    batch.add_entry(NewEntry::new(number, entry));
    register.writer.commit(&batch).unwrap();
    assert_eq!(
        register
            .store
            .snapshot()
            .unwrap()
            .checkpoint(Log::User)
            .unwrap(),
        Some(signed.clone())
    );
    drop(register);

    let country = country(data.path(), SequencerConfig::default());
    let checkpoint = country
        .store
        .snapshot()
        .unwrap()
        .checkpoint(Log::User)
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.size, number);
    let parsed = SignedCheckpoint::parse(checkpoint.text.as_bytes()).unwrap();
    parsed
        .verify(&country.origin, &country.verifier, &Verifiers::default())
        .unwrap();
    country.sequencer.join();
}

#[test]
fn a_clock_out_of_range_refuses_appends() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let register = registry
        .create::<RedbBackend>(&RegisterName::new("country").unwrap())
        .unwrap();
    let sequencer = Sequencer::spawn(
        "country",
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        Box::new(|| None),
    )
    .unwrap();
    let result = sequencer.handle().run(Request::append(vec![(
        "QA".into(),
        country_item("QA", "A"),
    )]));
    assert!(matches!(result, Err(SequencerError::Clock)), "{result:?}");
    sequencer.join();
}

#[test]
fn documents_for_another_register_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let register = registry
        .create::<RedbBackend>(&RegisterName::new("territory").unwrap())
        .unwrap();
    let store = register.store.clone();
    let sequencer = Sequencer::spawn(
        "territory",
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        fixed_clock(),
    )
    .unwrap();
    let result = sequencer.handle().run(Request::Load {
        commands: rsf_commands("registers/api-client/country_register.rsf"),
        policy: Policy::IMPORT,
    });
    assert!(
        matches!(result, Err(SequencerError::WrongRegister { .. })),
        "{result:?}"
    );
    assert_eq!(store.snapshot().unwrap().size(Log::System), 0);
    sequencer.join();
}

/// A backend whose commits take `delay` and then fail while `failing` is
/// set: a slow, full disk.
#[derive(Debug)]
struct Flaky {
    inner: RedbBackend,
    failing: Arc<AtomicBool>,
    delay: Duration,
}

impl regis_store::KvBackend for Flaky {
    type Snapshot = <RedbBackend as regis_store::KvBackend>::Snapshot;

    fn snapshot(&self) -> Result<Self::Snapshot, regis_store::StoreError> {
        self.inner.snapshot()
    }

    fn commit(&self, batch: regis_store::KvBatch) -> Result<(), regis_store::StoreError> {
        std::thread::sleep(self.delay);
        if self.failing.load(Ordering::SeqCst) {
            return Err(regis_store::StoreError::Io(
                std::io::Error::from_raw_os_error(28),
            ));
        }
        self.inner.commit(batch)
    }

    fn recover(&self) -> Result<(), regis_store::StoreError> {
        self.inner.recover()
    }
}

/// The country register loaded, on a [`Flaky`] backend.
fn flaky_country(
    data: &Path,
    delay: Duration,
    config: SequencerConfig,
) -> (Sequencer, Store<Flaky>, Arc<AtomicBool>) {
    use regis_store::DirBackend;
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new("country").unwrap();
    let register = registry.create::<RedbBackend>(&name).unwrap();
    let signers = register.signers;
    drop((register.store, register.writer));
    let failing = Arc::new(AtomicBool::new(false));
    let kv = Flaky {
        inner: RedbBackend::open_dir(&registry.dir(&name)).unwrap(),
        failing: failing.clone(),
        delay,
    };
    let (store, writer) = Store::open(
        kv,
        regis_store::Files::open_dir(&registry.dir(&name)).unwrap(),
    )
    .unwrap();
    let sequencer = Sequencer::spawn(
        "country",
        store.clone(),
        writer,
        signers,
        config,
        fixed_clock(),
    )
    .unwrap();
    sequencer
        .handle()
        .run(Request::Load {
            commands: rsf_commands("registers/api-client/country_register.rsf"),
            policy: Policy::IMPORT,
        })
        .unwrap();
    (sequencer, store, failing)
}

#[test]
fn a_failed_commit_signs_nothing_and_the_next_one_carries_on() {
    let data = tempfile::tempdir().unwrap();
    let (sequencer, store, failing) =
        flaky_country(data.path(), Duration::ZERO, SequencerConfig::default());
    let handle = sequencer.handle();
    let before = store.snapshot().unwrap();
    let (size, checkpoint) = (
        before.size(Log::User),
        before.checkpoint(Log::User).unwrap(),
    );
    drop(before);

    failing.store(true, Ordering::SeqCst);
    let result = handle.run(Request::append(vec![(
        "QA".into(),
        country_item("QA", "A"),
    )]));
    assert!(
        matches!(result, Err(SequencerError::Store(_))),
        "{result:?}"
    );
    let after = store.snapshot().unwrap();
    assert_eq!(after.size(Log::User), size);
    assert_eq!(after.checkpoint(Log::User).unwrap(), checkpoint);
    drop(after);

    failing.store(false, Ordering::SeqCst);
    let receipt = handle
        .run(Request::append(vec![(
            "QA".into(),
            country_item("QA", "A"),
        )]))
        .unwrap();
    assert_eq!(receipt.entries[0].number, size + 1);
    assert_eq!(receipt.checkpoints.user.size, size + 1);
    assert_eq!(
        receipt.checkpoints.user.root,
        store.snapshot().unwrap().root(Log::User).unwrap()
    );
    drop(handle);
    sequencer.join();
}

/// The sequencer stages a batch while the committer commits the one before
/// (here each request is a batch, and each commit takes 200 ms): staging
/// reads the batch in flight as if it were stored, and a batch staged on
/// one that then fails is refused with that failure, while the next one
/// carries on from what is committed.
#[test]
fn batches_staged_while_the_last_commits_build_on_it() {
    let data = tempfile::tempdir().unwrap();
    let config = SequencerConfig {
        max_entries: 1,
        max_delay: Duration::ZERO,
        queue: 8,
    };
    let (sequencer, store, failing) =
        flaky_country(data.path(), Duration::from_millis(200), config);
    let handle = sequencer.handle();
    let size = store.snapshot().unwrap().size(Log::User);
    let append = |key: &str, name: &str| {
        handle
            .submit(Request::append(vec![(key.into(), country_item(key, name))]))
            .unwrap()
    };

    let first = append("QA", "A");
    let repeated = append("QA", "A");
    let update = append("QA", "B");
    assert_eq!(
        first.blocking_recv().unwrap().unwrap().entries[0].number,
        size + 1
    );
    let refused = repeated.blocking_recv().unwrap();
    assert!(
        matches!(&refused, Err(SequencerError::Rejected(_))),
        "{refused:?}"
    );
    assert_eq!(
        update.blocking_recv().unwrap().unwrap().entries[0].number,
        size + 2
    );

    failing.store(true, Ordering::SeqCst);
    let failed = append("QB", "B");
    let staged_on_it = append("QC", "C");
    for ticket in [failed, staged_on_it] {
        let result = ticket.blocking_recv().unwrap();
        assert!(
            matches!(&result, Err(SequencerError::Store(_))),
            "{result:?}"
        );
    }
    failing.store(false, Ordering::SeqCst);
    let next = append("QD", "D").blocking_recv().unwrap().unwrap();
    assert_eq!(next.entries[0].number, size + 3);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.size(Log::User), size + 3);
    assert_eq!(
        next.checkpoints.user.root,
        snapshot.root(Log::User).unwrap()
    );
    assert_eq!(
        snapshot
            .record(Log::User, "QA")
            .unwrap()
            .unwrap()
            .entry_number,
        size + 2
    );
    drop((snapshot, handle));
    sequencer.join();
}

#[test]
fn a_register_defined_by_name_and_fields_validates_its_items() {
    use regis_model::{Cardinality, Datatype, Field};
    let field = |name: &str, datatype, cardinality| Field {
        name: name.into(),
        datatype,
        cardinality,
        register: None,
        text: Some(format!("The {name}.")),
        phase: None,
    };
    let fields = [
        field("fruit", Datatype::String, Cardinality::One),
        field("colours", Datatype::String, Cardinality::Many),
        field("weight", Datatype::Integer, Cardinality::One),
    ];
    let name = RegisterName::new("fruit").unwrap();
    let timestamp = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    assert!(matches!(
        regis_model::definition_commands(&name, &fields[1..], "Fruit.", None, timestamp),
        Err(regis_model::DefinitionError::NoPrimaryKey(_))
    ));
    let commands =
        regis_model::definition_commands(&name, &fields, "Fruit.", None, timestamp).unwrap();

    let data = tempfile::tempdir().unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let register = registry.create::<RedbBackend>(&name).unwrap();
    let store = register.store.clone();
    let sequencer = Sequencer::spawn(
        "fruit",
        register.store,
        register.writer,
        register.signers,
        SequencerConfig::default(),
        fixed_clock(),
    )
    .unwrap();
    let handle = sequencer.handle();
    let receipt = handle
        .run(Request::Load {
            commands,
            policy: Policy::APPEND,
        })
        .unwrap();
    assert_eq!(receipt.appended.system, 5);
    let item = |json: &str| Item::parse(json).unwrap();
    let good = handle.run(Request::append(vec![(
        "apple".into(),
        item(r#"{"fruit":"apple","colours":["red","green"],"weight":"150"}"#),
    )]));
    assert!(good.is_ok(), "{good:?}");
    for bad in [
        r#"{"fruit":"pear","colours":"green"}"#,
        r#"{"fruit":"pear","weight":"heavy"}"#,
        r#"{"fruit":"pear","taste":"sweet"}"#,
    ] {
        let result = handle.run(Request::append(vec![("pear".into(), item(bad))]));
        assert!(
            matches!(result, Err(SequencerError::Rejected(_))),
            "{bad}: {result:?}"
        );
    }
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.size(Log::User), 1);
    assert_eq!(
        snapshot
            .records_by_field("colours", "green", 0, 10)
            .unwrap()[0]
            .key,
        "apple"
    );
    drop(handle);
    sequencer.join();
}

/// An RSF fixture as a stream of commands, read as it is applied.
fn stream(bytes: Vec<u8>) -> Request {
    stream_under(bytes, Policy::IMPORT)
}

/// [`stream`] under `policy`.
fn stream_under(bytes: Vec<u8>, policy: Policy) -> Request {
    Request::Stream {
        commands: regis_store::Commands::new(regis_model::rsf::RsfReader::new(
            std::io::Cursor::new(bytes),
        )),
        policy,
    }
}

/// A new, empty `country` register in `data`, its directory copied from
/// `template` when given (so that two registers sign with one key).
fn empty_register(data: &Path, template: Option<&Path>) -> (Registry, RegisterName) {
    empty_register_named("country", data, template)
}

/// [`empty_register`] named `name`.
fn empty_register_named(
    name: &str,
    data: &Path,
    template: Option<&Path>,
) -> (Registry, RegisterName) {
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new(name).unwrap();
    match template {
        Some(template) => {
            let dir = registry.dir(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let from = Registry::new(template, "regis.test").dir(&name);
            for file in std::fs::read_dir(from).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), dir.join(file.file_name())).unwrap();
            }
        }
        None => drop(registry.create::<RedbBackend>(&name).unwrap()),
    }
    (registry, name)
}

/// A sequencer over the store of `registry`'s `name`, opened by `kv`.
fn spawn_over<B: regis_store::KvBackend>(
    kv: impl FnOnce(RedbBackend) -> B,
    registry: &Registry,
    name: &RegisterName,
) -> (Sequencer, Store<B>) {
    use regis_store::DirBackend;
    let signers = registry.open::<RedbBackend>(name).unwrap().signers;
    let dir = registry.dir(name);
    let (store, writer) = Store::open(
        kv(RedbBackend::open_dir(&dir).unwrap()),
        regis_store::Files::open_dir(&dir).unwrap(),
    )
    .unwrap();
    let sequencer = Sequencer::spawn(
        name.as_str(),
        store.clone(),
        writer,
        signers,
        SequencerConfig::default(),
        fixed_clock(),
    )
    .unwrap();
    (sequencer, store)
}

const BASE: &str = "registers/api-client/country_register.rsf";
const UPDATE: &str = "registers/api-client/country_register_update.rsf";

#[test]
fn streamed_loads_equal_loads_from_memory() {
    let template = tempfile::tempdir().unwrap();
    empty_register(template.path(), None);
    let expected = {
        let data = tempfile::tempdir().unwrap();
        let (registry, name) = empty_register(data.path(), Some(template.path()));
        let (sequencer, store) = spawn_over(|kv| kv, &registry, &name);
        for file in [BASE, UPDATE] {
            sequencer
                .handle()
                .run(Request::Load {
                    commands: rsf_commands(file),
                    policy: Policy::IMPORT,
                })
                .unwrap();
        }
        sequencer.join();
        common::digest(&store.snapshot().unwrap())
    };
    // The update's custodian entry falls after the 9 user entries.
    assert!(
        expected.contains("system entry 13 at user size Some(9)\n"),
        "{expected}"
    );
    // redb's own streaming transaction, and the default one (gathered in
    // memory, as sled's) through a backend that does not override it.
    for redb in [true, false] {
        let data = tempfile::tempdir().unwrap();
        let (registry, name) = empty_register(data.path(), Some(template.path()));
        let digest = if redb {
            let (sequencer, store) = spawn_over(|kv| kv, &registry, &name);
            let receipts = [BASE, UPDATE].map(|file| {
                sequencer
                    .handle()
                    .run(stream(regis_fixtures::read(file)))
                    .unwrap()
            });
            assert_eq!(receipts[0].appended.user, 7);
            assert_eq!(receipts[1].checkpoints.user.size, 9);
            sequencer.join();
            common::digest(&store.snapshot().unwrap())
        } else {
            let flaky = |inner| Flaky {
                inner,
                failing: Default::default(),
                delay: Duration::ZERO,
            };
            let (sequencer, store) = spawn_over(flaky, &registry, &name);
            for file in [BASE, UPDATE] {
                sequencer
                    .handle()
                    .run(stream(regis_fixtures::read(file)))
                    .unwrap();
            }
            sequencer.join();
            common::digest(&store.snapshot().unwrap())
        };
        assert_eq!(digest, expected, "redb transaction: {redb}");
    }
}

/// Published history's slips (the project's quirk fixtures) through the
/// store, streamed and from memory: a strict import and new writes refuse
/// each document and store nothing of it; an import stores it with its
/// roots and answers with its warnings, both ways alike; an orphan item is
/// kept; the definition read back from the stored system records (as every
/// start-up reads it) is the loader's, a stray key defining nothing; fsck
/// is clean.
#[test]
fn published_slips_load_into_a_store_with_their_warnings() {
    for quirk in regis_fixtures::quirks() {
        let file = quirk.path.display().to_string();
        let bytes = std::fs::read(&quirk.path).unwrap();
        let mut model = regis_model::Register::new();
        model.load_rsf(&bytes[..], Policy::IMPORT).unwrap();
        let request = |streamed: bool, policy: Policy| match streamed {
            true => stream_under(bytes.clone(), policy),
            false => Request::Load {
                commands: regis_model::rsf::RsfReader::new(&bytes[..])
                    .collect::<Result<_, _>>()
                    .unwrap(),
                policy,
            },
        };
        let template = tempfile::tempdir().unwrap();
        empty_register_named(&quirk.register, template.path(), None);
        let mut digests = Vec::new();
        for streamed in [true, false] {
            let data = tempfile::tempdir().unwrap();
            let (registry, name) =
                empty_register_named(&quirk.register, data.path(), Some(template.path()));
            let (sequencer, store) = spawn_over(|kv| kv, &registry, &name);
            let handle = sequencer.handle();
            let before = common::digest(&store.snapshot().unwrap());
            for policy in [Policy::IMPORT_STRICT, Policy::APPEND] {
                match handle.run(request(streamed, policy)) {
                    Err(SequencerError::Rejected(error)) => {
                        assert_eq!(error.line, quirk.warnings[0].line, "{file}: {error}")
                    }
                    other => panic!("{file}: {other:?}"),
                }
                assert_eq!(common::digest(&store.snapshot().unwrap()), before, "{file}");
            }
            let receipt = handle.run(request(streamed, Policy::IMPORT)).unwrap();
            let lines: Vec<u64> = receipt.warnings.first().iter().map(|w| w.line).collect();
            let expected: Vec<u64> = quirk.warnings.iter().map(|w| w.line).collect();
            assert_eq!(lines, expected, "{file}");
            assert_eq!(receipt.warnings.count(), expected.len() as u64, "{file}");
            assert_eq!(
                [
                    receipt.items_added,
                    receipt.appended.user,
                    receipt.appended.system
                ],
                [quirk.items, quirk.user_entries, quirk.system_entries],
                "{file}"
            );
            assert_eq!(
                regis_model::format_hash(&receipt.checkpoints.user.root),
                quirk.root,
                "{file}"
            );
            drop(handle);
            sequencer.join();
            let snapshot = store.snapshot().unwrap();
            for orphan in quirk.warnings.iter().filter_map(|w| w.item.as_deref()) {
                let hash = regis_model::parse_hash(orphan).unwrap();
                assert!(snapshot.item(&hash).unwrap().is_some(), "{file}: {orphan}");
            }
            digests.push(common::digest(&snapshot));
            drop((snapshot, store));
            let opened = registry.open::<RedbBackend>(&name).unwrap();
            assert_eq!(
                regis_store::load_schema(name.as_str(), &opened.store).unwrap(),
                *model.schema(),
                "{file}"
            );
            regis_store::fsck(&opened.store.snapshot().unwrap(), &opened.signers)
                .unwrap_or_else(|error| panic!("{file}: {error}"));
        }
        assert_eq!(digests[0], digests[1], "{file}");
    }
}

#[test]
fn streamed_loads_are_all_or_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (registry, name) = empty_register(data.path(), None);
    let failing = Arc::new(AtomicBool::new(false));
    let flaky = |inner| Flaky {
        inner,
        failing: failing.clone(),
        delay: Duration::ZERO,
    };
    let (sequencer, store) = spawn_over(flaky, &registry, &name);
    let handle = sequencer.handle();
    let before = common::digest(&store.snapshot().unwrap());
    let base = regis_fixtures::read(BASE);
    let first_item = rsf_commands(BASE)
        .into_iter()
        .find_map(|(_, command)| match command {
            regis_model::rsf::Command::AddItem(item) => Some(item.hash()),
            _ => None,
        })
        .unwrap();

    // A failed assertion, a malformed line, each after the whole document;
    // then a commit that fails.
    let wrong_root = [
        base.clone(),
        format!("assert-root-hash\tsha-256:{}\n", "0".repeat(64)).into_bytes(),
    ]
    .concat();
    let malformed = [base.clone(), b"append-entry\tuser\n".to_vec()].concat();
    for (bytes, fail_commit) in [
        (wrong_root, false),
        (malformed, false),
        (base.clone(), true),
    ] {
        failing.store(fail_commit, Ordering::SeqCst);
        let result = handle.run(stream(bytes));
        match fail_commit {
            true => assert!(
                matches!(result, Err(SequencerError::Store(_))),
                "{result:?}"
            ),
            false => assert!(
                matches!(result, Err(SequencerError::Rejected(_))),
                "{result:?}"
            ),
        }
        let snapshot = store.snapshot().unwrap();
        assert_eq!(common::digest(&snapshot), before);
        assert_eq!(snapshot.item(first_item.as_bytes()).unwrap(), None);
    }

    // The sequencer carries on: the same document loads whole.
    failing.store(false, Ordering::SeqCst);
    let receipt = handle.run(stream(base)).unwrap();
    assert_eq!(receipt.checkpoints.user.size, 7);
    assert!(
        store
            .snapshot()
            .unwrap()
            .item(first_item.as_bytes())
            .unwrap()
            .is_some()
    );
    drop(handle);
    sequencer.join();
}

#[test]
fn a_stream_keeps_its_place_among_the_requests_gathered_with_it() {
    let data = tempfile::tempdir().unwrap();
    // A long gathering window, so that the requests below form one batch.
    let config = SequencerConfig {
        max_delay: Duration::from_millis(200),
        ..SequencerConfig::default()
    };
    let first = country(data.path(), config);
    let handle = first.sequencer.handle();
    // An append before the update: the update's opening assertion (the
    // base's root) no longer holds, so it fails, alone.
    let early = handle
        .submit(Request::append(vec![(
            "QB".into(),
            country_item("QB", "B"),
        )]))
        .unwrap();
    let refused = handle.submit(stream(regis_fixtures::read(UPDATE))).unwrap();
    let early = early.blocking_recv().unwrap().unwrap();
    assert_eq!(early.entries[0].number, 8);
    assert!(matches!(
        refused.blocking_recv().unwrap(),
        Err(SequencerError::Rejected(_))
    ));
    drop(handle);
    first.sequencer.join();

    // In a fresh register: the update, then an append gathered with it.
    let data = tempfile::tempdir().unwrap();
    let second = country(data.path(), config);
    let handle = second.sequencer.handle();
    let update = handle.submit(stream(regis_fixtures::read(UPDATE))).unwrap();
    let late = handle
        .submit(Request::append(vec![(
            "QB".into(),
            country_item("QB", "B"),
        )]))
        .unwrap();
    let update = update.blocking_recv().unwrap().unwrap();
    let late = late.blocking_recv().unwrap().unwrap();
    assert_eq!(update.checkpoints.user.size, 9);
    assert_eq!(late.entries[0].number, 10);
    assert_covered(&second, &late);
    drop(handle);
    second.sequencer.join();
}

/// Copies a register's directory (no subdirectories: the redb backend's).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A register whose store went back behind what it published (a lost
/// commit, a restored backup) is refused on open, not signed over: were
/// it opened, its next appends would be signed at sizes already handed
/// out, with other roots: a fork under the log's own key.
#[test]
fn a_store_behind_its_published_checkpoint_is_refused_not_signed_over() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("registers/country");
    let backup = data.path().join("backup");
    let country = country(data.path(), SequencerConfig::default());
    let before = country.store.snapshot().unwrap().size(Log::User);
    country.sequencer.join();
    drop(country.store);
    copy_dir(&dir, &backup);

    let country = self::country(data.path(), SequencerConfig::default());
    let receipt = country
        .sequencer
        .handle()
        .run(Request::append(vec![(
            "ZZ".into(),
            country_item("ZZ", "Zedland"),
        )]))
        .unwrap();
    assert_eq!(receipt.checkpoints.user.size, before + 1);
    country.sequencer.join();
    drop(country.store);

    // The store goes back; the record of what was published stays.
    let published = std::fs::read(dir.join(regis_store::PUBLISHED_FILE)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&backup, &dir);
    std::fs::write(dir.join(regis_store::PUBLISHED_FILE), &published).unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let name = RegisterName::new("country").unwrap();
    let error = registry.open::<RedbBackend>(&name).unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "the user checkpoint of size {} was published, but the store holds {before} entries",
            before + 1
        )),
        "{error}"
    );

    // Without that record the old store opens, and would sign over the
    // published checkpoint: the record is what refuses it.
    std::fs::remove_file(dir.join(regis_store::PUBLISHED_FILE)).unwrap();
    let country = self::country(data.path(), SequencerConfig::default());
    let forked = country
        .sequencer
        .handle()
        .run(Request::append(vec![(
            "ZY".into(),
            country_item("ZY", "Zyland"),
        )]))
        .unwrap();
    assert_eq!(forked.checkpoints.user.size, before + 1);
    assert_ne!(forked.checkpoints.user.root, receipt.checkpoints.user.root);
    country.sequencer.join();
}
