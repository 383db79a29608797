//! Any C2SP log, not only Regis's: a log in Go's checksum-database style
//! (origin `go.sum database tree`, its key named `sum.golang.org`) is
//! cosigned as a Regis log is, and its fork kept as evidence that names the
//! origin; real checkpoints of Go's checksum database and of a Sigsum log,
//! from the shared fixtures, are cosigned.

use std::path::Path;

use regis_client::audit::{Evidence, ForkKind};
use regis_model::Log as LogKind;
use regis_note::{AddCheckpoint, KeyName, NoteSigner, SignedCheckpoint, Verifier, Verifiers};
use regis_witness::{EVIDENCE_DIR, Limits, Options, add_log, init};

use crate::common::{
    Log, Serving, WITNESS_NAME, check_cosignature, check_cosignature_of, temp_witness_dir,
};

const GO_ORIGIN: &str = "go.sum database tree";
const GO_KEY_NAME: &str = "sum.golang.org";

/// A log as Go's checksum database names it, with a key of our own.
fn go_log(tag: &str, size: u64) -> Log {
    Log::with_key_name(GO_ORIGIN, GO_KEY_NAME, [7; 32], tag, size)
}

/// The only evidence file's bytes.
fn only_evidence(dir: &Path) -> Vec<u8> {
    let files: Vec<_> = std::fs::read_dir(dir.join(EVIDENCE_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

/// `bytes` with the byte at `at` flipped (its lowest bit).
fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[at] ^= 0x01;
    bytes
}

#[test]
fn a_log_whose_key_is_not_named_by_its_origin_is_cosigned_and_its_fork_kept() {
    let (_temp, dir) = temp_witness_dir();
    let log = go_log("real", 40);
    let fork = go_log("fork", 40);
    let key = log.key();
    assert_eq!(key.name().as_str(), GO_KEY_NAME);
    let witness = init(&dir, KeyName::new(WITNESS_NAME).unwrap()).unwrap();
    assert!(add_log(&dir, GO_ORIGIN, &key).unwrap());
    let served = Serving::start(&dir, Options::default(), Limits::default());

    // Through several sizes, each with a real consistency proof from the
    // last (and once the same size again).
    let mut at = 0;
    for size in [1, 2, 7, 8, 20, 33, 33] {
        let answer = served.add_checkpoint(&log.request(at, size));
        assert_eq!(answer.status, 200, "{at} to {size}: {answer:?}");
        check_cosignature(&answer.body, &log.checkpoint(size), &log, &witness);
        at = size;
    }
    let monitored = SignedCheckpoint::parse(served.checkpoint_of(&log).body.as_bytes()).unwrap();
    assert_eq!(monitored.checkpoint(), log.checkpoint(at).checkpoint());
    let witnesses = Verifiers::new([witness.clone()]).unwrap();
    assert_eq!(
        monitored.verify(GO_ORIGIN, &key, &witnesses).unwrap().len(),
        1
    );

    // The fork: its larger tree does not extend ours (no evidence by
    // itself), its tree of our size has another root (evidence).
    let answer = served.add_checkpoint(&fork.request(at, at + 2));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(answer.body.contains("proof"), "{answer:?}");
    let answer = served.add_checkpoint(&fork.request(at, at));
    assert_eq!(answer.status, 422, "{answer:?}");
    let bytes = only_evidence(&dir);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(&format!(r#""origin":"{GO_ORIGIN}""#)),
        "{text}"
    );
    let evidence = Evidence::verify(&bytes, &key).unwrap();
    assert_eq!(evidence.origin.as_deref(), Some(GO_ORIGIN));
    assert_eq!(evidence.log, LogKind::User);
    assert_eq!(evidence.kind, ForkKind::SameSizeDifferentRoot);
    assert_eq!(evidence.key, key);
    assert_eq!(evidence.old.root(), &log.root(at));
    assert_eq!(evidence.new.root(), &fork.root(at));
    assert_eq!(evidence.old.to_string(), served.checkpoint_of(&log).body);
    assert_eq!(evidence.encode(), text);

    // A flipped byte anywhere that matters: it no longer holds. The
    // new checkpoint comes first in the file, the old one second.
    let new_size = format!("{GO_ORIGIN}\\n{at}\\n");
    let log_line = format!("— {GO_KEY_NAME} ");
    let origin_field = r#""origin":""#;
    let flips = [
        (
            "the origin",
            text.find(origin_field).unwrap() + origin_field.len(),
        ),
        (
            "the new checkpoint's root",
            text.find(&new_size).unwrap() + new_size.len(),
        ),
        (
            "the old checkpoint's signature",
            text.rfind(&log_line).unwrap() + log_line.len() + 8,
        ),
        (
            "the key",
            text.find(&format!("{key}")).unwrap() + GO_KEY_NAME.len() + 3,
        ),
    ];
    for (what, at) in flips {
        let refused = Evidence::verify(&flipped(&bytes, at), &key);
        assert!(refused.is_err(), "{what} flipped: {refused:?}");
    }

    // Fields that say another thing: refused too.
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let changes: [(&str, &str, Option<serde_json::Value>); 4] = [
        ("no origin: the key's name is not it", "origin", None),
        ("another origin", "origin", Some("sum.golang.org".into())),
        ("an origin that is no string", "origin", Some(7.into())),
        ("a system log", "log", Some("system".into())),
    ];
    for (case, field, value) in changes {
        let mut changed = json.clone();
        let object = changed.as_object_mut().unwrap();
        match value {
            Some(value) => object.insert(field.to_owned(), value),
            None => object.remove(field),
        };
        let refused = Evidence::verify(changed.to_string().as_bytes(), &key);
        assert!(refused.is_err(), "{case}: {refused:?}");
    }
    // Nor with another key of the same name.
    let impostor = NoteSigner::from_seed(KeyName::new(GO_KEY_NAME).unwrap(), &[8; 32]).verifier();
    assert!(Evidence::verify(&bytes, &impostor).is_err());
}

/// A real checkpoint of a log that is not Regis's, and its key.
struct RealLog {
    what: &'static str,
    origin: String,
    key: Verifier,
    note: String,
}

fn real_logs() -> Vec<RealLog> {
    let formats = regis_fixtures::read_json("tlog/transparency-dev-formats/formats_vectors.json");
    let go = formats["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vector| vector["origin"] == GO_ORIGIN && vector["vkey"].is_string())
        .unwrap();
    let sigsum =
        &regis_fixtures::read_json("tlog/sigsum-go/sigsum_checkpoint_vectors.json")["vectors"][0];
    let seed: [u8; 32] = hex::decode(sigsum["ed25519_seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sigsum_origin = sigsum["origin"].as_str().unwrap();
    let sigsum_key = NoteSigner::from_seed(KeyName::new(sigsum_origin).unwrap(), &seed).verifier();
    assert_eq!(
        hex::encode(sigsum_key.public_key().as_bytes()),
        sigsum["ed25519_public_hex"].as_str().unwrap()
    );
    vec![
        RealLog {
            what: "Go's checksum database, its production key",
            origin: go["origin"].as_str().unwrap().to_owned(),
            key: Verifier::parse(go["vkey"].as_str().unwrap()).unwrap(),
            note: go["note"].as_str().unwrap().to_owned(),
        },
        RealLog {
            what: "a Sigsum log",
            origin: sigsum_origin.to_owned(),
            key: sigsum_key,
            note: sigsum["checkpoint"].as_str().unwrap().to_owned(),
        },
    ]
}

#[test]
fn real_checkpoints_of_go_and_sigsum_logs_are_cosigned() {
    let (_temp, dir) = temp_witness_dir();
    let witness = init(&dir, KeyName::new(WITNESS_NAME).unwrap()).unwrap();
    let logs = real_logs();
    assert_eq!(logs[0].key.name().as_str(), GO_KEY_NAME);
    for log in &logs {
        assert!(
            add_log(&dir, &log.origin, &log.key).unwrap(),
            "{}",
            log.what
        );
    }
    let served = Serving::start(&dir, Options::default(), Limits::default());
    for log in &logs {
        let checkpoint = SignedCheckpoint::parse(log.note.as_bytes()).unwrap();
        let request = AddCheckpoint {
            old_size: 0,
            proof: Vec::new(),
            checkpoint: checkpoint.clone(),
        };
        let answer = served.add_checkpoint(&request.to_bytes());
        assert_eq!(answer.status, 200, "{}: {answer:?}", log.what);
        check_cosignature_of(&answer.body, &checkpoint, &log.origin, &log.key, &witness);
        // Served to monitors as the log signed it, with our cosignature.
        let path = format!("/{}/checkpoint", regis_witness::origin_hash(&log.origin));
        let monitored = SignedCheckpoint::parse(served.get(&path).body.as_bytes()).unwrap();
        assert_eq!(
            monitored.checkpoint(),
            checkpoint.checkpoint(),
            "{}",
            log.what
        );
        let witnesses = Verifiers::new([witness.clone()]).unwrap();
        assert_eq!(
            monitored
                .verify(&log.origin, &log.key, &witnesses)
                .unwrap()
                .len(),
            1,
            "{}",
            log.what
        );
    }
}
