//! `regis witness` as an operator runs it: `init`, `add-log` for both logs
//! of a register loaded by `regis load` (keys from `regis key`), `serve`;
//! the register's checkpoints cosigned, a fork's checkpoint refused and
//! kept as evidence that `regis audit --evidence` re-checks; SIGTERM stops
//! it cleanly, and after a kill -9 amid requests it restarts at the last
//! state it answered or the one it was writing.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use regis_merkle::{Edge, MemoryHashes, consistency_proof, leaf_hash};
use regis_note::{
    AddCheckpoint, Checkpoint, KeyName, NoteSigner, SignedCheckpoint, Verifier, Verifiers,
};
use regis_store::{Log, RedbBackend, Registry};

use crate::common::http::Answer;
use crate::common::{WitnessServer, copy_dir, countries_rsf, load_country, ok, regis, text};

const BASE: &str = "registers/api-client/country_register.rsf";
const UPDATE: &str = "registers/api-client/country_register_update.rsf";

/// The register's signed checkpoint of `log`, from its store.
fn stored_checkpoint(data: &Path, log: Log) -> SignedCheckpoint {
    let name = regis_model::RegisterName::new("country").unwrap();
    let register = Registry::new(data, "localhost")
        .open::<RedbBackend>(&name)
        .unwrap();
    let tree = register.store.snapshot().unwrap().checkpoint(log).unwrap();
    SignedCheckpoint::parse(tree.unwrap().text.as_bytes()).unwrap()
}

fn first_request(checkpoint: &SignedCheckpoint) -> Vec<u8> {
    AddCheckpoint {
        old_size: 0,
        proof: Vec::new(),
        checkpoint: checkpoint.clone(),
    }
    .to_bytes()
}

/// Checks a 200 body: one cosignature of `checkpoint` by `witness`.
fn check_cosigned(
    answer: &Answer,
    checkpoint: &SignedCheckpoint,
    key: &Verifier,
    witness: &Verifier,
) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    let lines = regis_note::parse_cosignature_lines(&answer.body).unwrap();
    let mut cosigned = checkpoint.clone();
    for line in lines {
        cosigned.add_signature(line).unwrap();
    }
    let witnesses = Verifiers::new([witness.clone()]).unwrap();
    let origin = checkpoint.checkpoint().origin();
    let verified = cosigned.verify(origin, key, &witnesses).unwrap();
    assert_eq!(verified.len(), 1);
}

/// A log of `size` leaves (`leaf <tag> <i>`) of `origin`, signed by the
/// key of `seed` named `key_name`.
struct SignedLog {
    origin: String,
    signer: NoteSigner,
    hashes: MemoryHashes,
}

impl SignedLog {
    fn new(origin: &str, key_name: &str, seed: [u8; 32], tag: &str, size: u64) -> Self {
        SignedLog {
            origin: origin.to_owned(),
            signer: NoteSigner::from_seed(KeyName::new(key_name).unwrap(), &seed),
            hashes: MemoryHashes::from_leaf_hashes(
                (0..size).map(|i| leaf_hash(format!("leaf {tag} {i}").as_bytes())),
            ),
        }
    }

    fn checkpoint(&self, size: u64) -> SignedCheckpoint {
        let root = Edge::from_reader(&self.hashes, size).unwrap().root();
        SignedCheckpoint::sign(
            Checkpoint::new(self.origin.as_str(), size, root).unwrap(),
            &self.signer,
        )
    }

    /// An add-checkpoint body from `old` to `new`, with its proof.
    fn request(&self, old: u64, new: u64) -> Vec<u8> {
        let edge = Edge::from_reader(&self.hashes, new).unwrap();
        AddCheckpoint {
            old_size: old,
            proof: if old == 0 {
                Vec::new()
            } else {
                consistency_proof(&self.hashes, &edge, old).unwrap()
            },
            checkpoint: self.checkpoint(new),
        }
        .to_bytes()
    }
}

#[test]
fn a_witness_cosigns_a_registers_logs_and_keeps_evidence_of_a_fork() {
    let work = tempfile::tempdir().unwrap();
    let (real, fork, data) = (
        work.path().join("real"),
        work.path().join("fork"),
        work.path().join("witness"),
    );
    let data_s = data.to_str().unwrap();
    load_country(&real, &regis_fixtures::path(BASE));
    copy_dir(&real, &fork);
    load_country(&real, &regis_fixtures::path(UPDATE));
    // Two new countries: the copy has the size of the real register after
    // its update, and another root.
    load_country(&fork, &countries_rsf(work.path(), "Forked", 2));

    let init = ok(regis(&[
        "witness",
        "init",
        "--data",
        data_s,
        "--name",
        "witness.test/w1",
    ]));
    let witness = Verifier::parse(init.lines().last().unwrap()).unwrap();
    assert_eq!(witness.name().as_str(), "witness.test/w1");
    assert_eq!(
        witness.signature_type(),
        regis_note::SignatureType::CosignatureV1
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = std::fs::metadata(data.join(regis_witness::KEY_FILE)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    let again = regis(&[
        "witness",
        "init",
        "--data",
        data_s,
        "--name",
        "witness.test/w1",
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already holds a witness"),
        "{}",
        text(&again.stderr)
    );

    // Both logs of the register, as `regis key` prints them.
    let printed = ok(regis(&[
        "key",
        "--data",
        real.to_str().unwrap(),
        "--register",
        "country",
    ]));
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let logs = [
        (Log::User, field("log-origin"), field("log-public-key")),
        (
            Log::System,
            field("system-log-origin"),
            field("system-log-public-key"),
        ),
    ];
    for (_, origin, key) in &logs {
        let add = || {
            regis(&[
                "witness", "add-log", "--data", data_s, "--origin", origin, "--key", key,
            ])
        };
        assert!(ok(add()).starts_with(&format!("trusting {key} for {origin}")));
        assert!(ok(add()).starts_with("already trusting"));
    }
    let refused = regis(&[
        "witness",
        "add-log",
        "--data",
        data_s,
        "--origin",
        &logs[0].1,
        "--key",
        &witness.to_string(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("type 0x01"),
        "{}",
        text(&refused.stderr)
    );

    let served = WitnessServer::start(&data);
    for (log, origin, key) in &logs {
        let key = Verifier::parse(key).unwrap();
        let checkpoint = stored_checkpoint(&real, *log);
        let answer = served.add_checkpoint(&first_request(&checkpoint)).unwrap();
        check_cosigned(&answer, &checkpoint, &key, &witness);
        let monitored = served.checkpoint(origin);
        assert_eq!(monitored.checkpoint(), checkpoint.checkpoint());
    }

    // The fork: the user log at the same size, another root.
    let forked = stored_checkpoint(&fork, Log::User);
    let size = forked.checkpoint().size();
    assert_eq!(
        size,
        stored_checkpoint(&real, Log::User).checkpoint().size()
    );
    let request = AddCheckpoint {
        old_size: size,
        proof: Vec::new(),
        checkpoint: forked,
    };
    let answer = served.add_checkpoint(&request.to_bytes()).unwrap();
    assert_eq!(answer.status, 422, "{}", answer.text());
    let evidence: Vec<_> = std::fs::read_dir(data.join(regis_witness::EVIDENCE_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let held = ok(regis(&[
        "audit",
        "--key",
        &logs[0].2,
        "--evidence",
        evidence[0].to_str().unwrap(),
    ]));
    assert!(
        held.contains(&format!(
            "the evidence holds: the user log's checkpoints {size} and {size}"
        )) && held.contains("of one size with different roots"),
        "{held}"
    );

    // SIGTERM: a clean stop.
    let mut served = served;
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
}

/// A C2SP log that is not Regis's, named as Go's checksum database names
/// its own (origin `go.sum database tree`, key `sum.golang.org`): trusted,
/// cosigned, and its fork kept as evidence `regis audit` re-checks.
#[test]
fn a_witness_keeps_evidence_of_a_fork_of_a_log_whose_key_is_named_otherwise() {
    const ORIGIN: &str = "go.sum database tree";
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("witness");
    let data_s = data.to_str().unwrap();
    let log = SignedLog::new(ORIGIN, "sum.golang.org", [5; 32], "real", 12);
    let fork = SignedLog::new(ORIGIN, "sum.golang.org", [5; 32], "fork", 12);
    let key = log.signer.verifier().to_string();
    let init = ok(regis(&[
        "witness", "init", "--data", data_s, "--name", "w.test/k",
    ]));
    let witness = Verifier::parse(init.lines().last().unwrap()).unwrap();
    let added = ok(regis(&[
        "witness", "add-log", "--data", data_s, "--origin", ORIGIN, "--key", &key,
    ]));
    assert!(
        added.starts_with(&format!("trusting {key} for {ORIGIN}")),
        "{added}"
    );

    let served = WitnessServer::start(&data);
    for (old, new) in [(0, 5), (5, 12)] {
        let answer = served.add_checkpoint(&log.request(old, new)).unwrap();
        check_cosigned(
            &answer,
            &log.checkpoint(new),
            &log.signer.verifier(),
            &witness,
        );
    }
    let answer = served.add_checkpoint(&fork.request(12, 12)).unwrap();
    assert_eq!(answer.status, 422, "{}", answer.text());
    let evidence: Vec<_> = std::fs::read_dir(data.join(regis_witness::EVIDENCE_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let file = evidence[0].to_str().unwrap();
    let held = ok(regis(&["audit", "--key", &key, "--evidence", file]));
    assert!(
        held.contains(&format!(
            "the evidence holds: checkpoints 12 and 12 of the log \"{ORIGIN}\""
        )) && held.contains("of one size with different roots"),
        "{held}"
    );
    // Another key of the same name: refused.
    let impostor = NoteSigner::from_seed(KeyName::new("sum.golang.org").unwrap(), &[6; 32]);
    let refused = regis(&[
        "audit",
        "--key",
        &impostor.verifier().to_string(),
        "--evidence",
        file,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("does not hold"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn a_witness_killed_amid_requests_restarts_at_a_state_it_answered_or_the_next() {
    const ORIGIN: &str = "regis.test/registers/killed";
    const SIZE: u64 = 400;
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("witness");
    let data_s = data.to_str().unwrap();
    let log = SignedLog::new(ORIGIN, ORIGIN, [3; 32], "killed", SIZE);
    let witness = Verifier::parse(
        ok(regis(&[
            "witness", "init", "--data", data_s, "--name", "w.test/k",
        ]))
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    ok(regis(&[
        "witness",
        "add-log",
        "--data",
        data_s,
        "--origin",
        ORIGIN,
        "--key",
        &log.signer.verifier().to_string(),
    ]));

    let mut at = 0;
    for round in 0..3 {
        let served = WitnessServer::start(&data);
        // One step at a time from where the witness stands; each answer
        // is reported, and the witness killed after the tenth.
        let (acked, acks) = mpsc::channel();
        let (sizes, last_acked) = std::thread::scope(|scope| {
            let sender = scope.spawn(|| {
                let mut last = at;
                for new in at + 1..=SIZE {
                    match served.add_checkpoint(&log.request(last, new)) {
                        Some(answer) if answer.status == 200 => {
                            check_cosigned(
                                &answer,
                                &log.checkpoint(new),
                                &log.signer.verifier(),
                                &witness,
                            );
                            last = new;
                            let _ = acked.send(new);
                        }
                        Some(answer) => panic!("{new}: {} {}", answer.status, answer.text()),
                        None => break,
                    }
                }
                last
            });
            let sizes: Vec<u64> = acks.iter().take(10).collect();
            let killed = Command::new("kill")
                .args(["-KILL", &served.child.id().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            (sizes, sender.join().unwrap())
        });
        drop(served);
        assert_eq!(sizes.len(), 10, "round {round}");
        let served = WitnessServer::start(&data);
        let stored = served.checkpoint(ORIGIN);
        let size = stored.checkpoint().size();
        assert!(
            size == last_acked || size == last_acked + 1,
            "round {round}: answered up to {last_acked}, restarted at {size}"
        );
        assert_eq!(stored.checkpoint(), log.checkpoint(size).checkpoint());
        let witnesses = Verifiers::new([witness.clone()]).unwrap();
        assert_eq!(
            stored
                .verify(ORIGIN, &log.signer.verifier(), &witnesses)
                .unwrap()
                .len(),
            1
        );
        at = size;
    }
    assert!(at >= 30, "{at}");
}
