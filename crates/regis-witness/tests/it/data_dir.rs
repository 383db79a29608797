//! The data directory: `init` makes a key once and keeps it; `add-log`
//! trusts only Ed25519 note keys, each once; and files that do not hold
//! what they must are refused with their path.

use std::path::Path;

use regis_note::{Cosigner, KeyName};
use regis_witness::{
    KEY_FILE, LOG_FILE, LOGS_DIR, Limits, Options, VKEY_FILE, Witness, WitnessError, add_log, init,
    origin_hash,
};

use crate::common::{Log, Register, Serving, WITNESS_NAME, check_cosignature, temp_witness_dir};

fn name(name: &str) -> KeyName {
    KeyName::new(name).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_makes_a_private_key_once() {
    let (_temp, dir) = temp_witness_dir();
    let verifier = init(&dir, name(WITNESS_NAME)).unwrap();
    assert_eq!(verifier.name().as_str(), WITNESS_NAME);
    assert_eq!(
        verifier.signature_type(),
        regis_note::SignatureType::CosignatureV1
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(VKEY_FILE)).unwrap(),
        format!("{verifier}\n")
    );
    let pem = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    #[cfg(unix)]
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    assert_eq!(Witness::open(&dir).unwrap().verifier(), verifier);

    match init(&dir, name("witness.test/other")) {
        Err(WitnessError::AlreadyInitialised(path)) => assert_eq!(path, dir),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_to_string(dir.join(KEY_FILE)).unwrap(), pem);

    // Another directory's init, each with a key of its own.
    let (_other_temp, other) = temp_witness_dir();
    assert_ne!(
        init(&other, name(WITNESS_NAME)).unwrap().public_key(),
        verifier.public_key()
    );

    // An init that stopped after writing its key: the next one keeps it.
    std::fs::remove_file(dir.join(VKEY_FILE)).unwrap();
    match Witness::open(&dir) {
        Err(WitnessError::NotInitialised(path)) => assert_eq!(path, dir),
        other => panic!("{other:?}"),
    }
    let again = init(&dir, name("witness.test/renamed")).unwrap();
    assert_eq!(again.public_key(), verifier.public_key());
    assert_eq!(again.name().as_str(), "witness.test/renamed");
}

#[test]
fn add_log_trusts_a_regis_log_key_once() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (10, 2));
    let log = &register.user;
    match add_log(&dir, &log.origin, &log.key()) {
        Err(WitnessError::NotInitialised(_)) => {}
        other => panic!("{other:?}"),
    }
    let witness = init(&dir, name(WITNESS_NAME)).unwrap();
    // A cosigner's key, even one named by the origin, signs no checkpoints.
    let cosigner_key = Cosigner::from_seed(name(&log.origin), &[1; 32]).verifier();
    match add_log(&dir, &log.origin, &cosigner_key) {
        Err(error @ WitnessError::LogKey { .. }) => {
            assert!(error.to_string().contains("type 0x01"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(Witness::open(&dir).unwrap().origins().is_empty());

    assert!(add_log(&dir, &log.origin, &log.key()).unwrap());
    assert!(!add_log(&dir, &log.origin, &log.key()).unwrap());
    // A second key for the origin (a rotation): both are trusted.
    let rotated = Log::new(&log.origin, [9; 32], "real", 10);
    assert!(add_log(&dir, &log.origin, &rotated.key()).unwrap());
    let text = std::fs::read_to_string(
        dir.join(LOGS_DIR)
            .join(origin_hash(&log.origin))
            .join(LOG_FILE),
    )
    .unwrap();
    assert_eq!(
        text,
        format!("{}\n{}\n{}\n", log.origin, log.key(), rotated.key())
    );
    assert_eq!(
        Witness::open(&dir).unwrap().origins(),
        [log.origin.as_str()]
    );

    let served = Serving::start(&dir, Options::default(), Limits::default());
    let answer = served.add_checkpoint(&log.request(0, 5));
    check_cosignature(&answer.body, &log.checkpoint(5), log, &witness);
    let answer = served.add_checkpoint(&rotated.request(5, 10));
    check_cosignature(&answer.body, &rotated.checkpoint(10), &rotated, &witness);
}

#[test]
fn files_that_do_not_hold_what_they_must_are_refused() {
    let register = Register::new("country", [1; 32], "real", (10, 2));
    let log = &register.user;
    let log_file = |dir: &Path| {
        dir.join(LOGS_DIR)
            .join(origin_hash(&log.origin))
            .join(LOG_FILE)
    };
    let another_key = Cosigner::from_seed(name(WITNESS_NAME), &[4; 32]);
    type Damage<'a> = Box<dyn Fn(&Path) -> std::path::PathBuf + 'a>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "the verifier key garbled",
            Box::new(|dir| {
                std::fs::write(dir.join(VKEY_FILE), "witness.test/w1+00000000+AA==\n").unwrap();
                dir.join(VKEY_FILE)
            }),
            "",
        ),
        (
            "the verifier key without its newline",
            Box::new(|dir| {
                let text = std::fs::read_to_string(dir.join(VKEY_FILE)).unwrap();
                std::fs::write(dir.join(VKEY_FILE), text.trim_end()).unwrap();
                dir.join(VKEY_FILE)
            }),
            "no newline",
        ),
        (
            "a log's key as the witness's",
            Box::new(|dir| {
                std::fs::write(dir.join(VKEY_FILE), format!("{}\n", log.key())).unwrap();
                dir.join(VKEY_FILE)
            }),
            "type 0x04",
        ),
        (
            "the private key replaced",
            Box::new(move |dir| {
                let pem = another_key.to_pkcs8_pem().unwrap();
                std::fs::write(dir.join(KEY_FILE), pem.as_bytes()).unwrap();
                dir.join(KEY_FILE)
            }),
            "not the key witness-vkey names",
        ),
        (
            "the private key garbled",
            Box::new(|dir| {
                std::fs::write(dir.join(KEY_FILE), "-----BEGIN PRIVATE KEY-----\n").unwrap();
                dir.join(KEY_FILE)
            }),
            "",
        ),
        (
            "a log file without keys",
            Box::new(|dir| {
                std::fs::write(log_file(dir), format!("{}\n", log.origin)).unwrap();
                log_file(dir)
            }),
            "no keys",
        ),
        (
            "a log file of another origin",
            Box::new(|dir| {
                let other = Log::new("witness.test/registers/other", [1; 32], "real", 1);
                std::fs::write(
                    log_file(dir),
                    format!("{}\n{}\n", other.origin, other.key()),
                )
                .unwrap();
                log_file(dir)
            }),
            "belongs in the directory",
        ),
        (
            "a log file with a key twice",
            Box::new(|dir| {
                std::fs::write(
                    log_file(dir),
                    format!("{}\n{}\n{}\n", log.origin, log.key(), log.key()),
                )
                .unwrap();
                log_file(dir)
            }),
            "line 3",
        ),
        (
            "a log file with a bad key",
            Box::new(|dir| {
                std::fs::write(log_file(dir), format!("{}\nnot a key\n", log.origin)).unwrap();
                log_file(dir)
            }),
            "line 2",
        ),
        (
            "a log file cut short",
            Box::new(|dir| {
                std::fs::write(log_file(dir), format!("{}\n{}", log.origin, log.key())).unwrap();
                log_file(dir)
            }),
            "newline",
        ),
    ];
    for (case, damage, says) in cases {
        let (_temp, dir) = temp_witness_dir();
        init(&dir, name(WITNESS_NAME)).unwrap();
        add_log(&dir, &log.origin, &log.key()).unwrap();
        #[cfg(unix)]
        let key_mode = mode(&dir.join(KEY_FILE));
        let path = damage(&dir);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let permissions = std::fs::Permissions::from_mode(key_mode);
            std::fs::set_permissions(dir.join(KEY_FILE), permissions).unwrap();
        }
        match Witness::open(&dir) {
            Err(WitnessError::Corrupt {
                path: reported,
                reason,
            }) => {
                assert_eq!(reported, path, "{case}: {reason}");
                assert!(reason.contains(says), "{case}: {reason}");
            }
            other => panic!("{case}: {other:?}"),
        }
    }
}

#[cfg(unix)]
#[test]
fn a_key_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_temp, dir) = temp_witness_dir();
    init(&dir, name(WITNESS_NAME)).unwrap();
    std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Witness::open(&dir).unwrap_err();
    assert!(matches!(error, WitnessError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("chmod 600"), "{error}");
    std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o600)).unwrap();
    Witness::open(&dir).unwrap();
}
