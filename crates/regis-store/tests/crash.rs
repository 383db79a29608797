//! Crash images, in the style of redb's own crash tests: the database and
//! the store's files run on disks that keep only what was synced, plus a
//! random subset of the writes made since the last sync, when a crash
//! strikes at a random operation (of any of them). Reopening that image must give exactly the state of the last
//! acknowledged commit, or of the commit in flight at the crash, and the
//! store must accept more commits afterwards.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{Model, digest};
use redb::StorageBackend;
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

/// Files per machine: the databases and the store's files.
const FILES: usize = DATABASES + regis_store::FILE_NAMES.len();

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
        self.with(|m, slot| {
            m.tick()?;
            apply(&mut m.disks[slot].current, &op);
            m.disks[slot].unsynced.push(op);
            Ok(())
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|m, slot| {
            m.tick()?;
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
    let disk = |slot| CrashDisk {
        machine: Arc::clone(machine),
        slot,
    };
    let database = |slot| {
        redb::Builder::new()
            .create_with_backend(disk(slot))
            .map_err(|e| StoreError::Backend(Box::new(e)))
    };
    let main = database(0)?;
    let recent = [database(1)?, database(2)?];
    let files = Files::from_parts(std::array::from_fn(|i| {
        Arc::new(disk(DATABASES + i)) as Arc<dyn BlobFile>
    }));
    // Merges in the committing thread (deterministic crash points), every
    // few commits, so that crashes strike merges too.
    let options = RedbOptions {
        merge_bytes: MERGE_BYTES,
        background: false,
    };
    Store::open(RedbBackend::from_databases(main, recent, options)?, files)
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
        let [user, _] = writer.commit(&batch).unwrap();
        assert_eq!(user.root, model.root(Log::User), "seed {seed}");
    }
}
