//! Crash images, in the style of redb's own crash tests: the database runs
//! on a disk that keeps only what was synced, plus a random subset of the
//! writes made since the last sync, when a crash strikes at a random
//! operation. Reopening that image must give exactly the state of the last
//! acknowledged commit, or of the commit in flight at the crash, and the
//! store must accept more commits afterwards.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{Model, digest};
use redb::StorageBackend;
use regis_store::{Batch, Log, RedbBackend, SignedTree, Store, StoreError, Writer};

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

#[derive(Debug)]
struct Disk {
    /// What a crash now would certainly keep.
    synced: Vec<u8>,
    /// What the program sees: `synced` plus `unsynced`.
    current: Vec<u8>,
    unsynced: Vec<Unsynced>,
    /// Operations (writes, length changes, syncs) left before the crash.
    countdown: Option<u64>,
    operations: u64,
    /// The image a crash left, once it has happened.
    crashed: Option<Vec<u8>>,
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

#[derive(Clone, Debug)]
struct CrashDisk(Arc<Mutex<Disk>>);

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

impl CrashDisk {
    fn new(image: Vec<u8>, seed: u64, loss: Loss) -> Self {
        CrashDisk(Arc::new(Mutex::new(Disk {
            synced: image.clone(),
            current: image,
            unsynced: Vec::new(),
            countdown: None,
            operations: 0,
            crashed: None,
            seed,
            loss,
        })))
    }

    /// Crashes after `countdown` more operations.
    fn arm(&self, countdown: u64) {
        self.0.lock().unwrap().countdown = Some(countdown);
    }

    fn crashed(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().crashed.clone()
    }

    fn operations(&self) -> u64 {
        self.0.lock().unwrap().operations
    }

    /// Counts an operation; crashes when the countdown runs out. After a
    /// crash every operation fails, as on a machine that lost power.
    fn tick(disk: &mut Disk) -> io::Result<()> {
        if disk.crashed.is_some() {
            return Err(io::Error::other("crashed"));
        }
        disk.operations += 1;
        match disk.countdown {
            Some(0) => {
                let mut image = disk.synced.clone();
                let mut rng = Rng(disk.seed | 1);
                let kept = match disk.loss {
                    Loss::Unsynced => 0,
                    Loss::Nothing | Loss::AnyWrites => disk.unsynced.len(),
                    Loss::Suffix => rng.below(disk.unsynced.len() as u64 + 1) as usize,
                };
                for op in &disk.unsynced[..kept] {
                    let lost = matches!((disk.loss, op), (Loss::AnyWrites, Unsynced::Write(..)))
                        && rng.below(2) == 0;
                    if !lost {
                        apply(&mut image, op);
                    }
                }
                disk.crashed = Some(image);
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

impl StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.0.lock().unwrap();
        let start = offset as usize;
        let bytes = disk
            .current
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        Self::tick(&mut disk)?;
        let op = Unsynced::SetLen(len);
        apply(&mut disk.current, &op);
        disk.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        Self::tick(&mut disk)?;
        disk.synced = disk.current.clone();
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        Self::tick(&mut disk)?;
        let op = Unsynced::Write(offset, data.to_vec());
        apply(&mut disk.current, &op);
        disk.unsynced.push(op);
        Ok(())
    }
}

fn open(disk: &CrashDisk) -> Result<(Store<RedbBackend>, Writer<RedbBackend>), StoreError> {
    let db = redb::Builder::new()
        .create_with_backend(disk.clone())
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    Store::open(RedbBackend::from_database(db)?)
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

#[test]
fn crash_losing_every_unsynced_write() {
    crash_images(Loss::Unsynced);
}

#[test]
fn crash_losing_no_write() {
    crash_images(Loss::Nothing);
}

#[test]
fn crash_losing_a_suffix_of_the_unsynced_writes() {
    crash_images(Loss::Suffix);
}

#[test]
fn crash_losing_any_unsynced_writes() {
    crash_images(Loss::AnyWrites);
}

/// Reopening a crash image gives the last acknowledged commit or the one in
/// flight, never anything else.
fn crash_images(loss: Loss) {
    // The states a reader sees after each successful commit, uncrashed.
    let disk = CrashDisk::new(Vec::new(), 0, Loss::Nothing);
    let (store, mut writer) = open(&disk).unwrap();
    let mut states = vec![digest(&store.snapshot().unwrap())];
    let mut model = Model::default();
    let setup_operations = disk.operations();
    let committed = run(&mut writer, &mut model, || {
        states.push(digest(&store.snapshot().unwrap()))
    });
    assert_eq!(committed, 12);
    let total = disk.operations();
    drop((store, writer));

    // Creating a database is made atomic by a rename (`RedbBackend::open_dir`);
    // what is tested here is every commit after it.
    let workload = total - setup_operations;
    let seeds = 200u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in 1..=seeds {
        let crash_at = rng.below(workload);
        let disk = CrashDisk::new(Vec::new(), seed, loss);
        let (_store, mut writer) = open(&disk).unwrap();
        disk.arm(crash_at);
        let committed = run(&mut writer, &mut Model::default(), || {});
        let image = disk.crashed().unwrap_or_else(|| {
            panic!("seed {seed}: no crash at operation {crash_at} of {workload}")
        });

        let reopened = CrashDisk::new(image, 0, Loss::Nothing);
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
