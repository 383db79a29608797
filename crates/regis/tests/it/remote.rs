//! `regis get` and `regis verify` against `regis serve`, all as a user
//! would run them: a real register loaded from a real dump, served on a
//! loopback port, checked with the key `regis key` printed.

use std::path::Path;
use std::process::Output;

use crate::common::{regis, serve, text};

/// The value of `prefix` in `regis key`'s output.
fn key(data: &Path, prefix: &str) -> String {
    let output = regis(&[
        "key",
        "--data",
        data.to_str().unwrap(),
        "--register",
        "country",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap()
        .to_owned()
}

/// One line on stderr, `regis: …`, and a failure status.
fn assert_fails(output: &Output, reason: &str) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("regis: ") && stderr.contains(reason),
        "{stderr}"
    );
}

#[test]
fn get_and_verify_a_served_register_with_its_pinned_key() {
    let data = tempfile::tempdir().unwrap();
    let fixture = regis_fixtures::path("registers/registry-data/country.rsf");
    let output = regis(&[
        "load",
        "--data",
        data.path().to_str().unwrap(),
        "--register",
        "country",
        "--host",
        "regis.test",
        fixture.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // "user log: 210 entries, root sha-256:…, R records"
    let loaded = text(&output.stdout);
    let records: usize = loaded
        .lines()
        .find(|line| line.starts_with("user log: 210 entries"))
        .and_then(|line| line.rsplit(", ").next())
        .and_then(|last| last.strip_suffix(" records"))
        .unwrap_or_else(|| panic!("{loaded}"))
        .parse()
        .unwrap();
    let vkey = key(data.path(), "log-public-key: ");
    let system_vkey = key(data.path(), "system-log-public-key: ");
    let server = serve(data.path(), "127.0.0.1:0");
    let url = format!("{}/registers/country", server.url);

    // CZ has two entries: the record is the later one.
    let output = regis(&["get", &url, "CZ", "--key", &vkey]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\"key\":\"CZ\"") && stdout.contains("2016-11-11T16:25:07Z"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("verified against checkpoint 210 of regis.test/registers/country\n"),
        "{stdout}"
    );

    let output = regis(&["verify", &url, "--key", &vkey, "--full", "--records"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("checkpoint 210 of regis.test/registers/country verified"));
    assert!(
        stdout.contains(&format!(
            "replayed 210 entries: every leaf matches the verified tiles, 210 items re-hashed, {records} records re-derived, root recomputed"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "B/records: {records} records listed exactly as re-derived\n"
        )),
        "{stdout}"
    );

    // Without --full: checkpoint and tiles only.
    let output = regis(&["verify", &url, "--key", &vkey]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).contains("replayed"));

    // The system log's key is not the user log's: refused.
    assert_fails(
        &regis(&["verify", &url, "--key", &system_vkey]),
        "does not verify with the pinned key",
    );
    assert_fails(
        &regis(&["get", &url, "CZ", "--key", &system_vkey]),
        "does not verify with the pinned key",
    );
    assert_fails(&regis(&["get", &url, "XX", "--key", &vkey]), "status 404");
    assert_fails(&regis(&["get", &url, "CZ", "--key", "nonsense"]), "--key");
    assert_fails(
        &regis(&["verify", &server.url, "--key", &vkey]),
        "is not a register URL",
    );
}
