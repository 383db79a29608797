//! The state a witness keeps: it survives a restart; a write that fails
//! answers 500 and cosigns nothing; a crash leaves the old state or the
//! new; and state that does not verify stops the witness from starting
//! rather than let it forget what it cosigned.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use regis_note::{Cosigner, KeyName, SignedCheckpoint};
use regis_witness::{
    CHECKPOINT_FILE, Disk, LOGS_DIR, Limits, Options, Storage, TEMPORARY_SUFFIX, Witness,
    WitnessError, origin_hash,
};

use crate::common::{Log, Register, Serving, check_cosignature, temp_witness_dir, witness_dir};

fn checkpoint_path(dir: &Path, log: &Log) -> std::path::PathBuf {
    dir.join(LOGS_DIR)
        .join(origin_hash(&log.origin))
        .join(CHECKPOINT_FILE)
}

/// The size the witness serves for `log`, or `None` (404).
fn served_size(served: &Serving, log: &Log) -> Option<u64> {
    let answer = served.checkpoint_of(log);
    match answer.status {
        200 => Some(
            SignedCheckpoint::parse(answer.body.as_bytes())
                .unwrap()
                .checkpoint()
                .size(),
        ),
        404 => None,
        _ => panic!("{answer:?}"),
    }
}

#[test]
fn the_state_survives_a_restart() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (20, 3));
    let witness = witness_dir(&dir, &register);
    let log = &register.user;
    let served = Serving::start(&dir, Options::default(), Limits::default());
    let first = served.add_checkpoint(&log.request(0, 10));
    let first = check_cosignature(&first.body, &log.checkpoint(10), log, &witness);
    let before = served.checkpoint_of(log).body;
    drop(served);

    let served = Serving::start(&dir, Options::default(), Limits::default());
    assert_eq!(served.checkpoint_of(log).body, before);
    let again = served.add_checkpoint(&log.request(0, 10));
    assert_eq!((again.status, again.body.as_str()), (409, "10\n"));
    let next = served.add_checkpoint(&log.request(10, 15));
    assert_eq!(next.status, 200, "{next:?}");
    let next = check_cosignature(&next.body, &log.checkpoint(15), log, &witness);
    assert!(next >= first);
    assert_eq!(served_size(&served, &register.system), None);
}

/// A disk whose replacements fail when told to: before writing anything,
/// or after the new file is in place (as when the directory's sync fails).
#[derive(Debug, Default)]
struct Faulty {
    mode: AtomicU8,
}

const WORKS: u8 = 0;
const FAILS_BEFORE: u8 = 1;
const FAILS_AFTER: u8 = 2;

impl Faulty {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Storage for Faulty {
    fn replace(&self, dir: &Path, file: &str, bytes: &[u8]) -> io::Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            FAILS_BEFORE => Err(io::Error::other("injected: no space left")),
            FAILS_AFTER => {
                Disk.replace(dir, file, bytes)?;
                Err(io::Error::other("injected: the directory sync failed"))
            }
            _ => Disk.replace(dir, file, bytes),
        }
    }
}

#[test]
fn a_failed_write_answers_500_and_cosigns_nothing() {
    // Each mode, and the sizes of the two logs after the restart below.
    for (mode, after_restart) in [(FAILS_BEFORE, (20, None)), (FAILS_AFTER, (30, Some(3)))] {
        let (_temp, dir) = temp_witness_dir();
        let register = Register::new("country", [1; 32], "real", (30, 3));
        let witness = witness_dir(&dir, &register);
        let (log, system) = (&register.user, &register.system);
        let faulty = Arc::new(Faulty::default());
        let options = Options {
            storage: faulty.clone(),
            ..Options::default()
        };
        let served = Serving::start(&dir, options.clone(), Limits::default());
        assert_eq!(served.add_checkpoint(&log.request(0, 10)).status, 200);

        faulty.set(mode);
        for (log, old, new, was) in [(log, 10, 20, Some(10)), (system, 0, 3, None)] {
            for _ in 0..2 {
                let answer = served.add_checkpoint(&log.request(old, new));
                assert_eq!(answer.status, 500, "{mode}: {answer:?}");
                assert!(answer.body.contains("nothing was cosigned"), "{answer:?}");
                assert!(answer.body.contains("injected"), "{answer:?}");
                // What is served and checked against is the old state.
                assert_eq!(served_size(&served, log), was, "{mode}");
            }
        }
        faulty.set(WORKS);
        let answer = served.add_checkpoint(&log.request(10, 20));
        assert_eq!(answer.status, 200, "{mode}: {answer:?}");
        check_cosignature(&answer.body, &log.checkpoint(20), log, &witness);
        drop(served);

        // Failing again, then a restart: the state is what was last
        // written whole, which for a failure after the write is the state
        // never answered (the log's next request learns it from a 409).
        let served = Serving::start(&dir, options, Limits::default());
        faulty.set(mode);
        assert_eq!(served.add_checkpoint(&log.request(20, 30)).status, 500);
        drop(served);
        let served = Serving::start(&dir, Options::default(), Limits::default());
        assert_eq!(served_size(&served, log), Some(after_restart.0), "{mode}");
        assert_eq!(served_size(&served, system), after_restart.1, "{mode}");
    }
}

#[test]
fn a_crash_mid_write_leaves_the_old_state() {
    let register = Register::new("country", [1; 32], "real", (30, 3));
    let log = &register.user;
    // What a write of the state at 20 leaves if the process dies before its
    // rename: the temporary file, empty, cut short, or whole.
    let whole = {
        let (_temp, dir) = temp_witness_dir();
        witness_dir(&dir, &register);
        let served = Serving::start(&dir, Options::default(), Limits::default());
        assert_eq!(served.add_checkpoint(&log.request(0, 20)).status, 200);
        std::fs::read(checkpoint_path(&dir, log)).unwrap()
    };
    let leftovers: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("cut short", &whole[..whole.len() / 2]),
        ("garbage", b"\xff\xfe not a note"),
        ("whole but not renamed", &whole),
    ];
    for (case, leftover) in leftovers {
        let (_temp, dir) = temp_witness_dir();
        let witness = witness_dir(&dir, &register);
        let served = Serving::start(&dir, Options::default(), Limits::default());
        assert_eq!(served.add_checkpoint(&log.request(0, 10)).status, 200);
        drop(served);
        let mut temporary = checkpoint_path(&dir, log).into_os_string();
        temporary.push(TEMPORARY_SUFFIX);
        std::fs::write(&temporary, leftover).unwrap();

        let served = Serving::start(&dir, Options::default(), Limits::default());
        assert_eq!(served_size(&served, log), Some(10), "{case}");
        let answer = served.add_checkpoint(&log.request(10, 20));
        assert_eq!(answer.status, 200, "{case}: {answer:?}");
        check_cosignature(&answer.body, &log.checkpoint(20), log, &witness);
        assert_eq!(served_size(&served, log), Some(20), "{case}");
    }
}

#[test]
fn state_that_does_not_verify_stops_the_witness_from_starting() {
    let register = Register::new("country", [1; 32], "real", (30, 3));
    let log = &register.user;
    let other_witness = Cosigner::from_seed(KeyName::new("witness.test/w2").unwrap(), &[5; 32]);
    type Corrupt = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Corrupt)> = vec![
        ("empty", Box::new(|_| String::new())),
        (
            "cut short",
            Box::new(|note| note[..note.len() - 10].to_owned()),
        ),
        (
            "the size changed",
            Box::new(|note| note.replacen("\n10\n", "\n11\n", 1)),
        ),
        (
            "the witness's line dropped",
            Box::new(|note| {
                let mut lines: Vec<&str> = note.lines().collect();
                lines.pop();
                lines.join("\n") + "\n"
            }),
        ),
        (
            "the log's line dropped",
            Box::new(|note| {
                let lines: Vec<&str> = note.lines().collect();
                let (text, signatures) = lines.split_at(lines.len() - 2);
                format!("{}\n{}\n", text.join("\n"), signatures[1])
            }),
        ),
        (
            "cosigned by another witness instead",
            Box::new(move |note| {
                let signed = SignedCheckpoint::parse(note.as_bytes()).unwrap();
                let theirs = other_witness.cosign(signed.checkpoint(), 1).unwrap();
                let mut lines: Vec<&str> = note.lines().collect();
                lines.pop();
                format!("{}\n{theirs}\n", lines.join("\n"))
            }),
        ),
    ];
    for (case, corrupt) in cases {
        let (_temp, dir) = temp_witness_dir();
        witness_dir(&dir, &register);
        let served = Serving::start(&dir, Options::default(), Limits::default());
        assert_eq!(served.add_checkpoint(&log.request(0, 10)).status, 200);
        drop(served);
        let path = checkpoint_path(&dir, log);
        let note = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, corrupt(&note)).unwrap();
        match Witness::open(&dir) {
            Err(WitnessError::Corrupt {
                path: reported,
                reason,
            }) => {
                assert_eq!(reported, path, "{case}: {reason}");
            }
            other => panic!("{case}: {other:?}"),
        }
    }
}
