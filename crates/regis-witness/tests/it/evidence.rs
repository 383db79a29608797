//! A log that asks for a second root at a size the witness cosigned has
//! forked: the witness refuses (422) and keeps both signed checkpoints in
//! `DIR/evidence/`, which regis-client's `Evidence::verify` re-checks with
//! nothing but the register's key.

use std::path::Path;
use std::sync::Arc;

use regis_client::audit::{Evidence, ForkKind};
use regis_model::Log as LogKind;
use regis_witness::{EVIDENCE_DIR, Limits, Options, Storage, origin_hash};

use crate::common::{Log, Register, Serving, temp_witness_dir, witness_dir};

/// The evidence files, sorted.
fn evidence_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(EVIDENCE_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_root_for_a_cosigned_size_is_kept_as_evidence() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (20, 6));
    let fork = Register::new("country", [1; 32], "fork", (24, 8));
    let other_fork = Register::new("country", [1; 32], "fork 2", (20, 6));
    witness_dir(&dir, &register);
    let served = Serving::start(&dir, Options::default(), Limits::default());
    let user_key = register.user.key();
    let mut kept = 0;
    for (kind, log, forked, other, size) in [
        (
            LogKind::User,
            &register.user,
            &fork.user,
            &other_fork.user,
            20,
        ),
        (
            LogKind::System,
            &register.system,
            &fork.system,
            &other_fork.system,
            6,
        ),
    ] {
        assert_eq!(served.add_checkpoint(&log.request(0, size)).status, 200);
        // A fork's larger checkpoint is refused too, but shows nothing by
        // itself: its proof from the witness's size just fails.
        let answer = served.add_checkpoint(&forked.request(size, size + 2));
        assert_eq!(answer.status, 422, "{answer:?}");
        assert!(answer.body.contains("proof"), "{answer:?}");
        assert_eq!(evidence_files(&dir).len(), kept);

        let answer = served.add_checkpoint(&forked.request(size, size));
        assert_eq!(answer.status, 422, "{answer:?}");
        kept += 1;
        let files = evidence_files(&dir);
        assert_eq!(files.len(), kept, "{files:?}");
        let hash = origin_hash(&log.origin);
        let file = files
            .iter()
            .find(|name| name.ends_with(&format!("-{hash}.json")))
            .unwrap();
        let stem = file.strip_suffix(&format!("-{hash}.json")).unwrap();
        assert!(stem.bytes().all(|b| b.is_ascii_digit()), "{file}");
        let bytes = std::fs::read(dir.join(EVIDENCE_DIR).join(file)).unwrap();
        // A Regis log's: its key's name says the origin.
        assert!(!String::from_utf8_lossy(&bytes).contains(r#""origin""#));
        // Checked with the register's (user log's) key, as `regis audit
        // --key VKEY --evidence FILE` checks it.
        let evidence = Evidence::verify(&bytes, &user_key).unwrap();
        assert_eq!(evidence.log, kind);
        assert_eq!(evidence.kind, ForkKind::SameSizeDifferentRoot);
        assert_eq!(evidence.old.root(), &log.root(size));
        assert_eq!(evidence.new.root(), &forked.root(size));
        // The stored checkpoint, as the witness cosigned it.
        assert_eq!(
            evidence.old.to_string(),
            served.checkpoint_of(log).body,
            "{kind}"
        );

        // The same request again adds nothing; another fork does.
        assert_eq!(
            served.add_checkpoint(&forked.request(size, size)).status,
            422
        );
        assert_eq!(evidence_files(&dir).len(), kept);
        assert_eq!(
            served.add_checkpoint(&other.request(size, size)).status,
            422
        );
        kept += 1;
        assert_eq!(evidence_files(&dir).len(), kept);
        // And the witness still stands where it was.
        assert_eq!(served.add_checkpoint(&log.request(size, size)).status, 200);
    }
}

/// A disk that writes nothing.
#[derive(Debug)]
struct Full;

impl Storage for Full {
    fn replace(&self, _: &Path, _: &str, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("injected: no space left"))
    }
}

#[test]
fn evidence_that_cannot_be_written_is_still_a_422() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (8, 1));
    let fork = Register::new("country", [1; 32], "fork", (8, 1));
    witness_dir(&dir, &register);
    let served = Serving::start(&dir, Options::default(), Limits::default());
    assert_eq!(
        served.add_checkpoint(&register.user.request(0, 8)).status,
        200
    );
    drop(served);
    let options = Options {
        storage: Arc::new(Full),
        ..Options::default()
    };
    let served = Serving::start(&dir, options, Limits::default());
    let answer = served.add_checkpoint(&fork.user.request(8, 8));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(evidence_files(&dir).is_empty());
}

/// `Evidence::same_size_different_root` holds only for what it says: two
/// checkpoints of one log, one size, two roots, both signed by the key.
/// A Regis log's evidence names no origin (its key's name says it); a
/// log whose key is named otherwise names its origin.
#[test]
fn evidence_is_made_only_of_a_same_size_fork() {
    let register = Register::new("country", [1; 32], "real", (20, 6));
    let fork = Register::new("country", [1; 32], "fork", (20, 6));
    let impostor = Register::new("country", [2; 32], "fork", (20, 6));
    let go = Log::with_key_name(
        "go.sum database tree",
        "sum.golang.org",
        [7; 32],
        "real",
        20,
    );
    let go_fork = Log::with_key_name(
        "go.sum database tree",
        "sum.golang.org",
        [7; 32],
        "fork",
        20,
    );
    let (user, system) = (&register.user, &register.system);
    let key = user.key();
    let cases = [
        (
            "a fork",
            user,
            &key,
            user.checkpoint(10),
            fork.user.checkpoint(10),
            Some(None),
        ),
        (
            "a system log's fork",
            system,
            &system.key(),
            system.checkpoint(5),
            fork.system.checkpoint(5),
            Some(None),
        ),
        (
            "a fork of a log whose key is named otherwise",
            &go,
            &go.key(),
            go.checkpoint(10),
            go_fork.checkpoint(10),
            Some(Some("go.sum database tree")),
        ),
        (
            "one root",
            user,
            &key,
            user.checkpoint(10),
            user.checkpoint(10),
            None,
        ),
        (
            "two sizes",
            user,
            &key,
            user.checkpoint(10),
            fork.user.checkpoint(12),
            None,
        ),
        (
            "another key's checkpoint",
            user,
            &key,
            user.checkpoint(10),
            impostor.user.checkpoint(10),
            None,
        ),
        (
            "the other log's checkpoint",
            user,
            &key,
            user.checkpoint(5),
            fork.system.checkpoint(5),
            None,
        ),
        (
            "another origin's checkpoints, signed by the key",
            &go,
            &go.key(),
            user.checkpoint(10),
            fork.user.checkpoint(10),
            None,
        ),
    ];
    for (case, log, log_key, old, new, origin) in cases {
        let made = Evidence::same_size_different_root(&log.origin, log_key, &old, &new);
        assert_eq!(made.is_ok(), origin.is_some(), "{case}: {made:?}");
        if let Ok(evidence) = made {
            assert_eq!(evidence.origin.as_deref(), origin.flatten(), "{case}");
            assert_eq!(evidence.kind, ForkKind::SameSizeDifferentRoot);
            let text = evidence.encode();
            assert_eq!(
                text.contains(r#""origin""#),
                evidence.origin.is_some(),
                "{case}"
            );
            Evidence::verify(text.as_bytes(), &evidence.key).unwrap();
        }
    }
    // Regis's evidence names the user log's key, for either log.
    let made = Evidence::same_size_different_root(
        &system.origin,
        &system.key(),
        &system.checkpoint(5),
        &fork.system.checkpoint(5),
    );
    assert_eq!(made.unwrap().key, key);
}
