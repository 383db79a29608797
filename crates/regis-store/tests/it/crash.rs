//! Crash images, in the style of redb's own crash tests: the database and
//! the store's files run on disks that keep only what was synced, plus a
//! random subset of the writes made since the last sync, when a crash
//! strikes at a random operation (of any of them). Reopening that image must give exactly the state of the last
//! acknowledged commit, or of the commit in flight at the crash, and the
//! store must accept more commits afterwards.

use std::io;
use std::sync::{Arc, Mutex};

use crate::common::{Model, digest, item, new_entry, sha256};
use redb::StorageBackend;
use regis_model::PerLog;
use regis_store::{
    Batch, BlobFile, Files, Log, RedbBackend, RedbOptions, SignedTree, Store, StoreError,
    TAIL_BYTES, Writer,
};

/// A deterministic xorshift generator: crash points and lost writes are
/// reproducible from the seed a failure prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug)]
enum Unsynced {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

/// One file of the machine: the database's or one of the store's files.
#[derive(Debug, Default)]
struct Disk {
    /// What a crash now would certainly keep.
    synced: Vec<u8>,
    /// What the program sees: `synced` plus `unsynced`.
    current: Vec<u8>,
    unsynced: Vec<Unsynced>,
}

/// Every file of one register, crashing together.
#[derive(Debug)]
struct Machine {
    disks: Vec<Disk>,
    /// Operations (writes, length changes, syncs) left before the crash.
    countdown: Option<u64>,
    operations: u64,
    /// The images a crash left, once it has happened.
    crashed: Option<Vec<Vec<u8>>>,
    seed: u64,
    loss: Loss,
    /// The operation at which the disk fails, and how.
    fault: Option<(u64, Fault)>,
    /// Whether the disk is full: writes that grow a file fail.
    full: bool,
    /// Holds writes to the main database while closed (a merge in hand).
    gate: Arc<Gate>,
}

/// A door writes to the main database wait at, and whether one waits.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// Waits while the gate is closed, noting that a write waits.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        while state.0 {
            state.1 = true;
            self.changed.notify_all();
            state = self.changed.wait(state).unwrap();
        }
    }

    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().0 = closed;
        self.changed.notify_all();
    }

    /// Waits until a write waits at the closed gate.
    fn wait_for_a_writer(&self) {
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }
}

/// How a disk fails at one operation, without crashing the machine.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// It fills up: from this operation on, every write that grows a file
    /// fails with ENOSPC (a sync then too, dropping what it would have
    /// written) until [`free`] makes room.
    Full,
    /// This one operation fails with EIO; a sync that fails drops the
    /// writes it would have made durable while they stay readable from the
    /// page cache (Linux after a writeback error: "fsyncgate").
    Eio,
}

/// What a crash loses of the writes made since the last sync.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// All of them: power lost before any reached the disk.
    Unsynced,
    /// None: the process died, the kernel kept its page cache.
    Nothing,
    /// A random suffix: the disk wrote back in order and stopped.
    Suffix,
    /// Any of the writes, in any order (length changes kept, as a
    /// journaling file system orders metadata). Losing a length change
    /// while keeping a later header write makes redb 3.1 fail an assertion
    /// on open (`page_manager.rs`: file shorter than its header's layout),
    /// so that case is left out.
    AnyWrites,
}

/// One of a machine's files: `slot` 0 is the database, then
/// `regis_store::FILE_NAMES` in order.
#[derive(Clone, Debug)]
struct CrashDisk {
    machine: Arc<Mutex<Machine>>,
    slot: usize,
}

/// redb's main database and its two recent ones.
const DATABASES: usize = 3;

/// Rows a recent database takes before it is merged: a few commits' worth.
const MERGE_BYTES: usize = 4 << 10;

/// Files per machine: the databases, the store's files and the file of
/// published checkpoints.
const FILES: usize = DATABASES + regis_store::FILE_NAMES.len() + 1;

fn apply(image: &mut Vec<u8>, op: &Unsynced) {
    match op {
        Unsynced::Write(offset, data) => {
            let start = *offset as usize;
            if image.len() < start + data.len() {
                image.resize(start + data.len(), 0);
            }
            image[start..start + data.len()].copy_from_slice(data);
        }
        Unsynced::SetLen(len) => image.resize(*len as usize, 0),
    }
}

impl Machine {
    fn new(images: Vec<Vec<u8>>, seed: u64, loss: Loss) -> Arc<Mutex<Machine>> {
        Arc::new(Mutex::new(Machine {
            disks: images
                .into_iter()
                .map(|image| Disk {
                    synced: image.clone(),
                    current: image,
                    unsynced: Vec::new(),
                })
                .collect(),
            countdown: None,
            operations: 0,
            crashed: None,
            seed,
            loss,
            fault: None,
            full: false,
            gate: Arc::default(),
        }))
    }

    /// A machine of empty files.
    fn empty(seed: u64, loss: Loss) -> Arc<Mutex<Machine>> {
        Machine::new(vec![Vec::new(); FILES], seed, loss)
    }

    /// Counts an operation; crashes when the countdown runs out. After a
    /// crash every operation fails, as on a machine that lost power.
    fn tick(&mut self) -> io::Result<()> {
        if self.crashed.is_some() {
            return Err(io::Error::other("crashed"));
        }
        self.operations += 1;
        match self.countdown {
            Some(0) => {
                let mut rng = Rng(self.seed | 1);
                let loss = self.loss;
                let images = self
                    .disks
                    .iter()
                    .map(|disk| {
                        let mut image = disk.synced.clone();
                        let kept = match loss {
                            Loss::Unsynced => 0,
                            Loss::Nothing | Loss::AnyWrites => disk.unsynced.len(),
                            Loss::Suffix => rng.below(disk.unsynced.len() as u64 + 1) as usize,
                        };
                        for op in &disk.unsynced[..kept] {
                            let lost = matches!((loss, op), (Loss::AnyWrites, Unsynced::Write(..)))
                                && rng.below(2) == 0;
                            if !lost {
                                apply(&mut image, op);
                            }
                        }
                        image
                    })
                    .collect();
                self.crashed = Some(images);
                Err(io::Error::other("crashed"))
            }
            Some(ref mut n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Machine {
    /// Fails the operation just counted if the disk fails there (or is
    /// full, and it needs room).
    fn fail(&mut self, needs_room: bool) -> io::Result<()> {
        let now = self.operations - 1;
        match self.fault {
            Some((at, Fault::Eio)) if at == now => {
                return Err(io::Error::from_raw_os_error(5));
            }
            Some((at, Fault::Full)) if at == now => self.full = true,
            _ => {}
        }
        if self.full && needs_room {
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

/// Makes the disk fail at operation `at` (counted from the machine's first).
fn inject(machine: &Arc<Mutex<Machine>>, at: u64, fault: Fault) {
    machine.lock().unwrap().fault = Some((at, fault));
}

/// Makes room on a full disk.
fn free(machine: &Arc<Mutex<Machine>>) {
    machine.lock().unwrap().full = false;
}

/// What a power cut now leaves: what was synced.
fn power_cut(machine: &Arc<Mutex<Machine>>) -> Vec<Vec<u8>> {
    let machine = machine.lock().unwrap();
    machine
        .disks
        .iter()
        .map(|disk| disk.synced.clone())
        .collect()
}

fn arm(machine: &Arc<Mutex<Machine>>, countdown: u64) {
    machine.lock().unwrap().countdown = Some(countdown);
}

fn operations(machine: &Arc<Mutex<Machine>>) -> u64 {
    machine.lock().unwrap().operations
}

fn crashed(machine: &Arc<Mutex<Machine>>) -> Option<Vec<Vec<u8>>> {
    machine.lock().unwrap().crashed.clone()
}

impl CrashDisk {
    fn with<T>(&self, f: impl FnOnce(&mut Machine, usize) -> io::Result<T>) -> io::Result<T> {
        f(&mut self.machine.lock().unwrap(), self.slot)
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|m, slot| Ok(m.disks[slot].current.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.with(|m, slot| {
            let start = offset as usize;
            let bytes = m.disks[slot]
                .current
                .get(start..start + out.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
            out.copy_from_slice(bytes);
            Ok(())
        })
    }

    fn change(&self, op: Unsynced) -> io::Result<()> {
        if self.slot == 0 {
            let gate = Arc::clone(&self.machine.lock().unwrap().gate);
            gate.pass();
        }
        self.with(|m, slot| {
            m.tick()?;
            let len = m.disks[slot].current.len() as u64;
            let grows = match &op {
                Unsynced::Write(offset, data) => offset + data.len() as u64 > len,
                Unsynced::SetLen(new) => *new > len,
            };
            m.fail(grows)?;
            apply(&mut m.disks[slot].current, &op);
            m.disks[slot].unsynced.push(op);
            Ok(())
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|m, slot| {
            m.tick()?;
            if let Err(error) = m.fail(true) {
                // The kernel marks the pages clean though they never
                // reached the disk: a later sync would not write them.
                m.disks[slot].unsynced.clear();
                return Err(error);
            }
            let disk = &mut m.disks[slot];
            disk.synced = disk.current.clone();
            disk.unsynced.clear();
            Ok(())
        })
    }
}

impl StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        CrashDisk::len(self)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        CrashDisk::read(self, offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(Unsynced::SetLen(len))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.change(Unsynced::Write(offset, data.to_vec()))
    }
}

impl BlobFile for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        CrashDisk::len(self)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read(offset, buf)
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.change(Unsynced::Write(offset, data.to_vec()))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(Unsynced::SetLen(len))
    }
}

fn open(
    machine: &Arc<Mutex<Machine>>,
) -> Result<(Store<RedbBackend>, Writer<RedbBackend>), StoreError> {
    // Merges in the committing thread (deterministic crash points), every
    // few commits, so that crashes strike merges too.
    open_with(
        machine,
        RedbOptions {
            merge_bytes: MERGE_BYTES,
            background: false,
            ..RedbOptions::default()
        },
        None,
    )
}

/// Opens the store on `machine`'s disks, with redb's default page cache
/// unless `cache_bytes` says otherwise (a small one spills the pages a
/// transaction dirties to the disk as it goes, not only when it commits).
fn open_with(
    machine: &Arc<Mutex<Machine>>,
    options: RedbOptions,
    cache_bytes: Option<usize>,
) -> Result<(Store<RedbBackend>, Writer<RedbBackend>), StoreError> {
    let disk = |slot| CrashDisk {
        machine: Arc::clone(machine),
        slot,
    };
    let files = Files::from_parts(
        std::array::from_fn(|i| Arc::new(disk(DATABASES + i)) as Arc<dyn BlobFile>),
        Arc::new(disk(FILES - 1)),
    );
    let reopen = Arc::clone(machine);
    let opener: regis_store::Opener = Box::new(move || {
        let database = |slot| {
            let mut builder = redb::Builder::new();
            if let Some(bytes) = cache_bytes {
                builder.set_cache_size(bytes);
            }
            builder
                .create_with_backend(CrashDisk {
                    machine: Arc::clone(&reopen),
                    slot,
                })
                .map_err(|e| StoreError::Backend(Box::new(e)))
        };
        Ok((database(0)?, [database(1)?, database(2)?]))
    });
    Store::open(RedbBackend::with_opener(opener, options)?, files)
}

/// The workload: appends, each followed by a checkpoint commit as the
/// sequencer does. Returns how many commits succeeded, and stops at the
/// first failure (the crash).
fn run(writer: &mut Writer<RedbBackend>, model: &mut Model, mut after: impl FnMut()) -> usize {
    let mut done = 0;
    for round in 0..6 {
        let mut batch = Batch::new();
        for i in 0..(round * 40 + 3) {
            let key = format!("k{}", (i * 5 + round) % 23);
            model.append(
                &mut batch,
                Log::User,
                &key,
                &format!("v{i}-{round}"),
                &["t"],
            );
        }
        model.append(&mut batch, Log::System, "name", &format!("r{round}"), &[]);
        if writer.commit(&batch).is_err() {
            return done;
        }
        done += 1;
        after();
        let mut batch = Batch::new();
        for log in [Log::User, Log::System] {
            let head = writer.head(log);
            batch.set_checkpoint(
                log,
                SignedTree {
                    size: head.size,
                    root: head.root,
                    text: format!("{log} {}\n", head.size),
                },
            );
        }
        if writer.commit(&batch).is_err() {
            return done;
        }
        done += 1;
        after();
    }
    done
}

// Each mode twice: small commits logging their file appends in the
// database (the default), and every commit syncing the files.

#[test]
fn crash_losing_every_unsynced_write() {
    crash_images(Loss::Unsynced, TAIL_BYTES);
    crash_images(Loss::Unsynced, 0);
}

#[test]
fn crash_losing_no_write() {
    crash_images(Loss::Nothing, TAIL_BYTES);
    crash_images(Loss::Nothing, 0);
}

#[test]
fn crash_losing_a_suffix_of_the_unsynced_writes() {
    crash_images(Loss::Suffix, TAIL_BYTES);
    crash_images(Loss::Suffix, 0);
}

#[test]
fn crash_losing_any_unsynced_writes() {
    crash_images(Loss::AnyWrites, TAIL_BYTES);
    crash_images(Loss::AnyWrites, 0);
}

/// Reopening a crash image gives the last acknowledged commit or the one in
/// flight, never anything else.
fn crash_images(loss: Loss, tail_bytes: u64) {
    // The states a reader sees after each successful commit, uncrashed.
    let disk = Machine::empty(0, Loss::Nothing);
    let (store, mut writer) = open(&disk).unwrap();
    writer.log_appends_up_to(tail_bytes);
    let mut states = vec![digest(&store.snapshot().unwrap())];
    let mut model = Model::default();
    let setup_operations = operations(&disk);
    let committed = run(&mut writer, &mut model, || {
        states.push(digest(&store.snapshot().unwrap()))
    });
    assert_eq!(committed, 12);
    let total = operations(&disk);
    drop((store, writer));

    // Creating a database is made atomic by a rename (`RedbBackend::open_dir`);
    // what is tested here is every commit after it.
    let workload = total - setup_operations;
    let seeds = 200u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in 1..=seeds {
        let crash_at = rng.below(workload);
        let disk = Machine::empty(seed, loss);
        let (_store, mut writer) = open(&disk).unwrap();
        writer.log_appends_up_to(tail_bytes);
        arm(&disk, crash_at);
        let committed = run(&mut writer, &mut Model::default(), || {});
        let images = crashed(&disk).unwrap_or_else(|| {
            panic!("seed {seed}: no crash at operation {crash_at} of {workload}")
        });

        let reopened = Machine::new(images, 0, Loss::Nothing);
        let (store, mut writer) = open(&reopened)
            .unwrap_or_else(|e| panic!("seed {seed}, crash at {crash_at}: reopen failed: {e}"));
        let state = digest(&store.snapshot().unwrap());
        let acceptable = &states[committed..(committed + 2).min(states.len())];
        assert!(
            acceptable.contains(&state),
            "seed {seed}, crash at operation {crash_at}: after {committed} commits the image holds\n{state}"
        );
        // The recovered store takes new commits on the recovered trees.
        let mut batch = Batch::new();
        let mut model = Model::default();
        let size = writer.head(Log::User).size;
        model.leaves[0] = store
            .snapshot()
            .unwrap()
            .entries(Log::User, 1, size)
            .unwrap()
            .into_iter()
            .map(|(_, leaf)| leaf)
            .collect();
        model.append(&mut batch, Log::User, "after", "crash", &[]);
        let PerLog { user, .. } = writer.commit(&batch).unwrap();
        assert_eq!(user.root, model.root(Log::User), "seed {seed}");
    }
}

/// The workload of [`run`], going on after failures: each one must leave
/// the writer refusing commits until it has reopened the store, which may
/// fail while the disk is full and must succeed once there is room.
/// Returns the state the writer last reported (after its last commit or
/// its last reopening), and how many times it failed.
fn run_through_faults(
    machine: &Arc<Mutex<Machine>>,
    store: &Store<RedbBackend>,
    writer: &mut Writer<RedbBackend>,
    context: &str,
) -> (String, usize) {
    let mut model = Model::default();
    let mut last = digest(&store.snapshot().unwrap());
    let mut failures = 0;
    for round in 0..4 {
        for checkpoint in [false, true] {
            let acknowledged = model.leaves.clone();
            let mut batch = Batch::new();
            if checkpoint {
                for log in [Log::User, Log::System] {
                    let head = writer.head(log);
                    let text = format!("{log} {}\n", head.size);
                    let (size, root) = (head.size, head.root);
                    batch.set_checkpoint(log, SignedTree { size, root, text });
                }
            } else {
                for i in 0..(round * 40 + 3) {
                    let key = format!("k{}", (i * 5 + round) % 23);
                    let name = format!("v{i}-{round}");
                    model.append(&mut batch, Log::User, &key, &name, &["t"]);
                }
                model.append(&mut batch, Log::System, "name", &format!("r{round}"), &[]);
            }
            let committed = writer.commit(&batch);
            if committed.is_ok() && writer.failed().is_none() {
                last = digest(&store.snapshot().unwrap());
                continue;
            }
            // A commit failed, or the database did after a durable commit
            // (a merge): writes wait for the store to be reopened.
            failures += 1;
            if let Err(error) = &committed {
                assert!(error.is_io(), "{context}: {error}");
            }
            assert!(writer.failed().is_some(), "{context}: not failed");
            let refused = writer.commit(&Batch::new()).unwrap_err();
            assert!(refused.is_io(), "{context}: a failed writer took a commit");
            if writer.recover().is_err() {
                free(machine);
                writer
                    .recover()
                    .unwrap_or_else(|e| panic!("{context}: reopening failed: {e}"));
            }
            assert!(writer.failed().is_none(), "{context}");
            last = digest(&store.snapshot().unwrap());
            // Every acknowledged entry is there, and the failed commit is
            // there whole or not at all.
            for log in [Log::User, Log::System] {
                let size = writer.head(log).size;
                let slot = usize::from(log == Log::System);
                let stored: Vec<Vec<u8>> = store
                    .snapshot()
                    .unwrap()
                    .entries(log, 1, size)
                    .unwrap()
                    .into_iter()
                    .map(|(_, leaf)| leaf)
                    .collect();
                assert!(
                    stored == acknowledged[slot] || stored == model.leaves[slot],
                    "{context}: the reopened {log} log has {} entries, {} were acknowledged",
                    stored.len(),
                    acknowledged[slot].len()
                );
                model.leaves[slot] = stored;
            }
        }
    }
    assert!(
        failures <= 2,
        "{context}: {failures} failures from one fault"
    );
    (last, failures)
}

/// A disk that fails at each operation in turn (a full disk, an EIO, a
/// failed fsync whose pages the kernel then drops): the writer reports
/// the failure, reopens the store from what is durable, and goes on; a
/// power cut at the end keeps exactly the state it last reported.
fn fault_at_every_operation(fault: Fault, tail_bytes: u64) {
    let disk = Machine::empty(0, Loss::Unsynced);
    let (store, mut writer) = open(&disk).unwrap();
    writer.log_appends_up_to(tail_bytes);
    let setup = operations(&disk);
    let (_, failures) = run_through_faults(&disk, &store, &mut writer, "no fault");
    assert_eq!(failures, 0);
    let total = operations(&disk);
    drop((store, writer));
    let mut failing = 0;
    for at in setup..total {
        let context = format!("{fault:?} at operation {at} of {total}, tails {tail_bytes}");
        let disk = Machine::empty(0, Loss::Unsynced);
        let (store, mut writer) = open(&disk).unwrap();
        writer.log_appends_up_to(tail_bytes);
        inject(&disk, at, fault);
        let (reported, failures) = run_through_faults(&disk, &store, &mut writer, &context);
        // A disk that fills after the last write that needed room fails
        // nothing.
        let unneeded = failures == 0 && disk.lock().unwrap().full;
        failing += usize::from(failures > 0 || unneeded);
        drop((store, writer));
        let after = Machine::new(power_cut(&disk), 0, Loss::Nothing);
        let (store, _writer) =
            open(&after).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
        assert_eq!(digest(&store.snapshot().unwrap()), reported, "{context}");
    }
    // Every operation of the workload writes or syncs: each fault fails
    // it, or (a full disk) every later one needs no room.
    assert_eq!(failing as u64, total - setup, "{fault:?}");
}

#[test]
fn a_full_disk_at_every_operation_loses_nothing_reported() {
    fault_at_every_operation(Fault::Full, TAIL_BYTES);
    fault_at_every_operation(Fault::Full, 0);
}

#[test]
fn an_io_error_at_every_operation_loses_nothing_reported() {
    fault_at_every_operation(Fault::Eio, TAIL_BYTES);
    fault_at_every_operation(Fault::Eio, 0);
}

/// Commits go on into the other recent database while the merger thread
/// copies a full one into the main database; a crash then (or a merge that
/// fails) must keep them: the database that takes them is the newer one on
/// disk before it takes any, so opening never shadows them with the older
/// one's values.
#[test]
fn commits_made_during_a_merge_survive_a_crash_in_it() {
    let disk = Machine::empty(0, Loss::Nothing);
    // Large enough that the commits below stay within the backlog a
    // merge in hand allows.
    let options = RedbOptions {
        merge_bytes: 64 << 10,
        background: true,
        ..RedbOptions::default()
    };
    let (store, mut writer) = open_with(&disk, options, None).unwrap();
    let gate = Arc::clone(&disk.lock().unwrap().gate);
    gate.set_closed(true);
    let mut model = Model::default();
    let mut commit = |writer: &mut Writer<RedbBackend>, round: usize| {
        let mut batch = Batch::new();
        for i in 0..20 {
            let key = format!("k{}", (i * 7 + round) % 31);
            model.append(&mut batch, Log::User, &key, &format!("v{i}-{round}"), &[]);
        }
        writer.commit(&batch).unwrap();
    };
    // Fill the first recent database: the merger starts, and waits.
    let mut round = 0;
    while !gate.state.lock().unwrap().1 {
        commit(&mut writer, round);
        round += 1;
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(round < 1000, "no merge began");
    }
    gate.wait_for_a_writer();
    for _ in 0..3 {
        commit(&mut writer, round);
        round += 1;
    }
    let acknowledged = digest(&store.snapshot().unwrap());
    // The process dies with the merge in hand (the kernel keeps its writes).
    let image: Vec<Vec<u8>> = disk
        .lock()
        .unwrap()
        .disks
        .iter()
        .map(|d| d.current.clone())
        .collect();
    let reopened = Machine::new(image, 0, Loss::Nothing);
    let after = open(&reopened).map(|(store, _)| digest(&store.snapshot().unwrap()));
    // The merger may finish now, so that the store can close.
    gate.set_closed(false);
    drop((store, writer));
    assert_eq!(after.unwrap(), acknowledged);
}

/// Appends `count` user entries after the first `from`, each with a new
/// item, over 97 keys (so that records are updated), in one bulk
/// transaction.
fn bulk_load(writer: &mut Writer<RedbBackend>, from: u64, count: u64) -> Result<(), StoreError> {
    writer.transact(|txn| {
        for n in 0..count {
            let json = item(&format!("bulk-{from}-{n}"), &["t"]);
            let hash = sha256(&json);
            txn.add_item(&hash, &json)?;
            let key = format!("b{}", n % 97);
            txn.add_entry(&new_entry(Log::User, from + n + 1, &key, &hash))?;
        }
        Ok(())
    })
}

/// A bulk transaction whose writes are applied on a thread of their own,
/// in small batches: a disk that fails at any operation fails it with the
/// disk's error; reopened, the store has all of it or none of it (a
/// commit whose last sync failed may have landed), and a power cut then
/// keeps exactly that. (Which operation a number names varies with the
/// threads' interleaving; what must hold does not.)
#[test]
fn a_bulk_transaction_failing_at_any_operation_is_all_or_nothing() {
    let options = RedbOptions {
        merge_bytes: MERGE_BYTES,
        background: true,
        bulk_batch_bytes: 2 << 10,
    };
    let setup = |disk: &Arc<Mutex<Machine>>| {
        // A page cache of a few pages: the applier writes to the disk.
        let (store, mut writer) = open_with(disk, options, Some(64 << 10)).unwrap();
        bulk_load(&mut writer, 0, 50).unwrap();
        let before = digest(&store.snapshot().unwrap());
        (store, writer, before)
    };
    let disk = Machine::empty(0, Loss::Unsynced);
    let (store, mut writer, _) = setup(&disk);
    let start = operations(&disk);
    bulk_load(&mut writer, 50, 150).unwrap();
    let total = operations(&disk);
    let loaded = digest(&store.snapshot().unwrap());
    drop((store, writer));
    let mut failed = 0;
    for fault in [Fault::Eio, Fault::Full] {
        for at in start..total {
            let context = format!("{fault:?} at operation {at} of {total}");
            let disk = Machine::empty(0, Loss::Unsynced);
            let (store, mut writer, before) = setup(&disk);
            inject(&disk, at, fault);
            if let Err(error) = bulk_load(&mut writer, 50, 150) {
                failed += 1;
                assert!(error.is_io(), "{context}: {error}");
                free(&disk);
                writer
                    .recover()
                    .unwrap_or_else(|e| panic!("{context}: reopening failed: {e}"));
            }
            let reported = digest(&store.snapshot().unwrap());
            assert!(
                reported == before || reported == loaded,
                "{context}: part of it"
            );
            drop((store, writer));
            let after = Machine::new(power_cut(&disk), 0, Loss::Nothing);
            let (store, _writer) =
                open(&after).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
            let kept = digest(&store.snapshot().unwrap());
            assert!(kept == reported, "{context}: not what was reported");
        }
    }
    // Every operation of the transaction writes or syncs: an EIO fails it.
    assert!(
        failed as u64 >= total - start,
        "{failed} of {}",
        total - start
    );
}
