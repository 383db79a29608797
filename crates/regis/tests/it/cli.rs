//! The `regis` binary, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

use regis_merkle::EMPTY_ROOT;
use regis_model::RegisterName;
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_store::{Log, RedbBackend, Registry};

fn regis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(relative: &str) -> String {
    regis_fixtures::path(format!("registers/{relative}"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn load(data: &Path, register: &str, file: &str) -> Output {
    regis(&[
        "load",
        "--data",
        data.to_str().unwrap(),
        "--register",
        register,
        "--host",
        "regis.test",
        &fixture(file),
    ])
}

/// (size, root) of a register's user log, read from its store.
fn user_log(data: &Path, register: &str) -> (u64, [u8; 32]) {
    let registry = Registry::new(data, "regis.test");
    let opened = registry
        .open::<RedbBackend>(&RegisterName::new(register).unwrap())
        .unwrap();
    let snapshot = opened.store.snapshot().unwrap();
    (snapshot.size(Log::User), snapshot.root(Log::User).unwrap())
}

#[test]
fn load_key_and_fsck() {
    let data = tempfile::tempdir().unwrap();
    let output = load(data.path(), "country", "api-client/country_register.rsf");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("7 user entries, 12 system entries"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sha-256:401ce60c619a0bd305264adb5f3992f19b758ded8754e0ffe0bed3832b3de28d"),
        "{stdout}"
    );
    let output = load(
        data.path(),
        "country",
        "api-client/country_register_update.rsf",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("2 root assertions checked"));

    let output = regis(&[
        "key",
        "--data",
        data.path().to_str().unwrap(),
        "--register",
        "country",
    ]);
    assert!(output.status.success());
    let keys = text(&output.stdout);
    let line = |prefix: &str| {
        keys.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("log-origin: "), "regis.test/registers/country");
    // The printed key verifies the stored checkpoint.
    let verifier = Verifier::parse(&line("log-public-key: ")).unwrap();
    let registry = Registry::new(data.path(), "regis.test");
    let opened = registry
        .open::<RedbBackend>(&RegisterName::new("country").unwrap())
        .unwrap();
    let checkpoint = opened
        .store
        .snapshot()
        .unwrap()
        .checkpoint(Log::User)
        .unwrap()
        .unwrap();
    drop(opened);
    SignedCheckpoint::parse(checkpoint.text.as_bytes())
        .unwrap()
        .verify(
            "regis.test/registers/country",
            &verifier,
            &Verifiers::default(),
        )
        .unwrap();

    let output = regis(&["fsck", "--data", data.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("country: ok: 9 user and 13 system entries"));
}

#[test]
fn a_failed_load_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    assert!(
        load(data.path(), "country", "api-client/country_register.rsf")
            .status
            .success()
    );
    assert!(
        load(
            data.path(),
            "country",
            "api-client/country_register_update.rsf"
        )
        .status
        .success()
    );
    let before = user_log(data.path(), "country");
    // Applying the update again: its first assert-root-hash is now wrong.
    let output = load(
        data.path(),
        "country",
        "api-client/country_register_update.rsf",
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("regis: ") && stderr.contains("assert-root-hash"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(user_log(data.path(), "country"), before);

    // A new register whose load fails is not left behind.
    let output = load(
        data.path(),
        "country2",
        "api-client/country_register_update.rsf",
    );
    assert!(!output.status.success());
    assert!(!data.path().join("registers/country2").exists());
    // Nor one whose RSF is malformed (a non-canonical item; GOV.UK's test
    // files are RSF under a .tsv name).
    let output = load(
        data.path(),
        "other",
        "openregister-java/serialized-negative/register-register-non-canonical-item.tsv",
    );
    assert!(!output.status.success());
    assert!(!data.path().join("registers/other").exists());
}

#[test]
fn fsck_reports_the_first_difference() {
    let data = tempfile::tempdir().unwrap();
    assert!(
        load(data.path(), "country", "api-client/country_register.rsf")
            .status
            .success()
    );
    // A first check opens the register, which writes back and syncs the
    // appends small commits logged in the database (`spec/store.md`,
    // "Commits"): what is changed after that is what the files alone hold.
    assert!(
        regis(&["fsck", "--data", data.path().to_str().unwrap()])
            .status
            .success()
    );
    {
        // Stored hash (0, 1) is the second in post-order: bytes 32..64.
        use std::os::unix::fs::FileExt;
        let position = regis_merkle::postorder::position(0, 1).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(data.path().join("registers/country/user.hashes"))
            .unwrap()
            .write_all_at(&[0; 32], position * 32)
            .unwrap();
    }
    let output = regis(&["fsck", "--data", data.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("register country") && stderr.contains("stored hash (level 0, index 1)"),
        "{stderr}"
    );
}

#[test]
fn empty_registers_have_the_empty_root() {
    let data = tempfile::tempdir().unwrap();
    let output = load(
        data.path(),
        "country",
        "api-client/country_register_system_only.rsf",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(user_log(data.path(), "country"), (0, EMPTY_ROOT));
}

#[test]
fn a_custodians_tsv_loads_into_a_defined_register() {
    let data = tempfile::tempdir().unwrap();
    // Undefined register: the TSV has no schema to be read with.
    let output = load(
        data.path(),
        "country",
        "source-tsv-yaml/country-data_countries.tsv",
    );
    assert!(!output.status.success());
    assert!(!data.path().join("registers/country").exists());

    let output = load(
        data.path(),
        "country",
        "api-client/country_register_system_only.rsf",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = load(
        data.path(),
        "country",
        "source-tsv-yaml/country-data_countries.tsv",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("206 user entries"));
    assert_eq!(user_log(data.path(), "country").0, 206);
    let output = regis(&["fsck", "--data", data.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// `regis load` of each of the project's quirk fixtures (slips published
/// history holds): `--strict` refuses it at its first slip's line and
/// leaves no register behind; without it, the file loads with its roots
/// and a warning naming each slip's line (and an orphan's item), and fsck
/// is clean.
#[test]
fn published_slips_load_with_warnings_and_strict_refuses_them() {
    for quirk in regis_fixtures::quirks() {
        let data = tempfile::tempdir().unwrap();
        let file = quirk.path.to_str().unwrap();
        let data_arg = data.path().to_str().unwrap();
        let args = |strict: bool| {
            let mut args = vec!["load", "--data", data_arg, "--register", &quirk.register];
            if strict {
                args.push("--strict");
            }
            args.push(file);
            args
        };
        let output = regis(&args(true));
        assert!(!output.status.success(), "{file}");
        let stderr = text(&output.stderr);
        let first = quirk.warnings[0].line;
        assert!(
            stderr.starts_with(&format!("regis: {file}: RSF line {first}: ")),
            "{stderr}"
        );
        assert!(!data.path().join("registers").join(&quirk.register).exists());

        let output = regis(&args(false));
        assert!(output.status.success(), "{file}: {}", text(&output.stderr));
        let stdout = text(&output.stdout);
        for expected in [
            format!(
                "{} new items, {} user entries, {} system entries, {} root assertions checked",
                quirk.items, quirk.user_entries, quirk.system_entries, quirk.assertions
            ),
            format!(
                "user log: {} entries, root {}",
                quirk.user_entries, quirk.root
            ),
            format!(
                "system log: {} entries, root {}",
                quirk.system_entries, quirk.system_root
            ),
        ] {
            assert!(stdout.contains(&expected), "{file}: {stdout}");
        }
        let stderr = text(&output.stderr);
        let warned: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains(": RSF line "))
            .collect();
        assert_eq!(warned.len(), quirk.warnings.len(), "{stderr}");
        for (line, warning) in warned.iter().zip(&quirk.warnings) {
            assert!(
                line.starts_with(&format!(
                    "regis: warning: {file}: RSF line {}: ",
                    warning.line
                )),
                "{stderr}"
            );
            if let Some(item) = &warning.item {
                assert!(line.contains(item.as_str()), "{stderr}");
            }
        }

        let output = regis(&["fsck", "--data", data_arg]);
        assert!(output.status.success(), "{file}: {}", text(&output.stderr));
        assert!(
            text(&output.stdout).starts_with(&format!(
                "{}: ok: {} user and {} system entries, {} items",
                quirk.register, quirk.user_entries, quirk.system_entries, quirk.items
            )),
            "{file}: {}",
            text(&output.stdout)
        );
    }
}
