//! Real crashes: `regis load` killed with SIGKILL at random moments, then
//! restarted. After every kill the data directory passes `regis fsck`, the
//! register is at a state some whole load produced (all or nothing), and
//! every checkpoint it ever stored is consistent with every later one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use regis_merkle::{Edge, consistency_proof, verify_consistency};
use regis_model::RegisterName;
use regis_store::{DirBackend, Log, RedbBackend, Registry};

const BASE: &str = "registers/api-client/country_register.rsf";
const UPDATE: &str = "registers/api-client/country_register_update.rsf";

/// A deterministic xorshift generator: the kill delays of a failing run can
/// be replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn regis(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regis"));
    command.args(args);
    command
}

/// The register's user log (size, root) and its stored checkpoint, if the
/// register exists.
type State = (u64, [u8; 32], Option<(u64, [u8; 32])>);

fn state<B: DirBackend>(data: &Path) -> Option<State> {
    state_of::<B>(data, "country")
}

fn state_of<B: DirBackend>(data: &Path, name: &str) -> Option<State> {
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new(name).unwrap();
    if !registry.exists::<B>(&name) {
        return None;
    }
    let opened = registry.open::<B>(&name).unwrap();
    let snapshot = opened.store.snapshot().unwrap();
    let checkpoint = snapshot
        .checkpoint(Log::User)
        .unwrap()
        .map(|c| (c.size, c.root));
    Some((
        snapshot.size(Log::User),
        snapshot.root(Log::User).unwrap(),
        checkpoint,
    ))
}

#[test]
fn kill_9_during_loads_leaves_a_consistent_register() {
    kill_loads::<RedbBackend>("redb", 30);
}

#[cfg(feature = "sled")]
#[test]
fn kill_9_during_loads_leaves_a_consistent_sled_register() {
    kill_loads::<regis_store::SledBackend>("sled", 20);
}

use crate::synthetic;

/// Entries of the first large document, and of the two together.
const LARGE_BASE: u64 = 3_000;
const LARGE_TOTAL: u64 = 15_000;

/// Two synthetic documents in `dir`: the first `LARGE_BASE` entries, then
/// the rest up to `LARGE_TOTAL` (the tail of the larger document, ending
/// with its `assert-root-hash`). Returns their paths and the roots after
/// each. The second, about 4 MB of RSF, writes its 72,000 field-index rows
/// as a run (more than the table takes), so kills land while the files are
/// appended past their committed lengths and while a run is written.
/// (Small commits, whose appends are logged in the database instead of
/// synced, are killed in `write_crash.rs`.)
fn large_documents(dir: &Path) -> [(std::path::PathBuf, [u8; 32]); 2] {
    let base = dir.join("base.rsf");
    let base_root =
        synthetic::write_synthetic(std::fs::File::create(&base).unwrap(), LARGE_BASE).unwrap();
    let mut whole = Vec::new();
    let total_root = synthetic::write_synthetic(&mut whole, LARGE_TOTAL).unwrap();
    // Skip the opening assertion and the base's item and entry lines.
    let skip = 1 + 2 * LARGE_BASE as usize;
    let tail: Vec<&[u8]> = whole.split_inclusive(|b| *b == b'\n').skip(skip).collect();
    let update = dir.join("update.rsf");
    std::fs::write(&update, tail.concat()).unwrap();
    [(base, base_root), (update, total_root)]
}

#[test]
fn kill_9_during_large_loads_leaves_a_consistent_register() {
    kill_large_loads::<RedbBackend>("redb", 20);
}

#[cfg(feature = "sled")]
#[test]
fn kill_9_during_large_sled_loads_leaves_a_consistent_register() {
    kill_large_loads::<regis_store::SledBackend>("sled", 20);
}

/// Loads of thousands of entries killed at random moments: whole loads
/// only, fsck clean, each checkpoint consistent with those before it.
fn kill_large_loads<B: DirBackend>(backend: &str, min_kills: u32) {
    let documents = tempfile::tempdir().unwrap();
    let [(base, base_root), (update, total_root)] = large_documents(documents.path());
    let seed = 0x9e37_79b9_7f4a_7c15;
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let mut checkpoints: Vec<(u64, [u8; 32])> = Vec::new();
    let (mut kills, mut finished, mut runs) = (0, 0, 0);
    // How long a whole load takes, measured by letting the first one of
    // each document finish; kills are spread over that span.
    let mut spans = [None, None];
    while (kills < min_kills || finished < 2) && runs < 200 {
        runs += 1;
        let size = state_of::<B>(data.path(), "synthetic").map_or(0, |(size, _, _)| size);
        let (file, slot) = match size {
            0 => (&base, 0),
            LARGE_BASE => (&update, 1),
            // The register is complete: begin again in a fresh one.
            _ => {
                std::fs::remove_dir_all(data.path().join("registers")).unwrap();
                checkpoints.clear();
                continue;
            }
        };
        let started = std::time::Instant::now();
        let mut child = regis(&[
            "load",
            "--data",
            dir,
            "--register",
            "synthetic",
            "--host",
            "regis.test",
            "--backend",
            backend,
            file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        let delay = match spans[slot] {
            None => {
                let status = child.wait().unwrap();
                assert!(status.success(), "{backend}: load of {file:?} failed");
                spans[slot] = Some(started.elapsed());
                None
            }
            Some(span) => {
                // Up to 110% of a whole load: now and then one finishes.
                let micros = span.as_micros() as u64 * 11 / 10;
                let delay = Duration::from_micros(rng.below(micros.max(1)));
                std::thread::sleep(delay);
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap();
                    kills += 1;
                }
                child.wait().unwrap();
                Some(delay)
            }
        };
        let Some((size, root, checkpoint)) = state_of::<B>(data.path(), "synthetic") else {
            continue;
        };
        let whole = match size {
            0 => root == regis_merkle::EMPTY_ROOT,
            LARGE_BASE => root == base_root,
            LARGE_TOTAL => {
                finished += 1;
                root == total_root
            }
            _ => false,
        };
        assert!(
            whole,
            "{backend}, seed {seed:#x}, delay {delay:?}: size {size} is no whole load"
        );
        let fsck = regis(&["fsck", "--data", dir, "--backend", backend])
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{backend}, seed {seed:#x}, delay {delay:?}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        if let Some(checkpoint) = checkpoint {
            assert_eq!(checkpoint.0, size, "every load is signed in its commit");
            if checkpoints.last() != Some(&checkpoint) {
                checkpoints.push(checkpoint);
            }
        }
        assert_consistent::<B>(data.path(), "synthetic", &checkpoints);
    }
    eprintln!("{backend}: {runs} large loads, {kills} killed, {finished} registers completed");
    assert!(
        kills >= min_kills,
        "{backend}: only {kills} loads were killed"
    );
}

/// Each checkpoint is consistent with every later one, proved from the
/// register's stored hashes.
fn assert_consistent<B: DirBackend>(data: &Path, name: &str, checkpoints: &[(u64, [u8; 32])]) {
    let registry = Registry::new(data, "regis.test");
    let opened = registry
        .open::<B>(&RegisterName::new(name).unwrap())
        .unwrap();
    let snapshot = opened.store.snapshot().unwrap();
    let hashes = snapshot.hashes(Log::User);
    for (i, &(old_size, old_root)) in checkpoints.iter().enumerate() {
        for &(new_size, new_root) in &checkpoints[i + 1..] {
            let edge = Edge::from_reader(&hashes, new_size).unwrap();
            let proof = consistency_proof(&hashes, &edge, old_size).unwrap();
            verify_consistency(old_size, new_size, &proof, &old_root, &new_root).unwrap();
        }
    }
}

fn kill_loads<B: DirBackend>(backend: &str, min_kills: u32) {
    let expected = regis_fixtures::read_json("registers/expected.json");
    let base_root = expected["incremental_rsf_pair"]["base_root"]
        .as_str()
        .unwrap();
    let final_root = expected["incremental_rsf_pair"]["root_after_update"]
        .as_str()
        .unwrap();
    let whole_loads = |size: u64, root: &[u8; 32]| match size {
        0 => *root == regis_merkle::EMPTY_ROOT,
        7 => regis_model::format_hash(root) == base_root,
        9 => regis_model::format_hash(root) == final_root,
        _ => false,
    };
    let seed = 0x2545_f491_4f6c_dd1d;
    let mut rng = Rng(seed);
    let (mut kills, mut chains) = (0, 0);
    // Enough chains (base then update, in a new directory) to have killed
    // loads often, within a bound.
    while (chains < 6 || kills < min_kills) && chains < 200 {
        chains += 1;
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().to_str().unwrap();
        // Every checkpoint seen in this data directory, in order.
        let mut checkpoints: Vec<(u64, [u8; 32])> = Vec::new();
        // The bound only stops a broken run.
        for _ in 0..500 {
            let current = state::<B>(data.path());
            let size = current.map_or(0, |(size, _, _)| size);
            let file = match size {
                0 => BASE,
                7 => UPDATE,
                _ => break,
            };
            let file = regis_fixtures::path(file);
            let mut child = regis(&[
                "load",
                "--data",
                dir,
                "--register",
                "country",
                "--host",
                "regis.test",
                "--backend",
                backend,
                file.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
            // Loads take a few to tens of milliseconds here: kill within that,
            // or now and then let one finish.
            let delay = rng.below(15_000);
            std::thread::sleep(Duration::from_micros(delay));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();

            let Some((size, root, checkpoint)) = state::<B>(data.path()) else {
                continue;
            };
            assert!(
                whole_loads(size, &root),
                "seed {seed:#x}, delay {delay}µs: size {size} is no whole load"
            );
            let fsck = regis(&["fsck", "--data", dir, "--backend", backend])
                .output()
                .unwrap();
            assert!(
                fsck.status.success(),
                "seed {seed:#x}, delay {delay}µs: {}",
                String::from_utf8_lossy(&fsck.stderr)
            );
            if let Some(checkpoint) = checkpoint {
                assert!(checkpoint.0 <= size);
                if checkpoints.last() != Some(&checkpoint) {
                    checkpoints.push(checkpoint);
                }
            }
        }
        // Each stored checkpoint is a prefix of every later one.
        let registry = Registry::new(data.path(), "regis.test");
        let opened = registry
            .open::<B>(&RegisterName::new("country").unwrap())
            .unwrap();
        let snapshot = opened.store.snapshot().unwrap();
        let hashes = snapshot.hashes(Log::User);
        for pair in checkpoints.windows(2) {
            let ((old_size, old_root), (new_size, new_root)) = (pair[0], pair[1]);
            let edge = Edge::from_reader(&hashes, new_size).unwrap();
            let proof = consistency_proof(&hashes, &edge, old_size).unwrap();
            verify_consistency(old_size, new_size, &proof, &old_root, &new_root).unwrap();
        }
    }
    assert!(kills >= min_kills, "only {kills} loads were killed");
}
