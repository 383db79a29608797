//! `regis fsck --links` and `regis get --links` as a user runs them, on
//! every register of `../shared/fixtures/registers/registry-data` loaded
//! into one data directory.

use std::path::Path;

use crate::common::http::rewriting_proxy;
use crate::common::{ok, regis, serve, text};

/// Every registry-data register, and what `regis fsck --links` counts in
/// it: links, dangling, unresolvable (to registers not in the fixtures).
const CENSUS: [(&str, u64, u64, u64); 9] = [
    ("allergen", 12, 0, 0),
    ("country", 0, 0, 0),
    ("datatype", 0, 0, 0),
    ("field", 154, 0, 0),
    ("information-sharing-agreement-0001", 146, 0, 118),
    ("local-authority-eng", 366, 0, 0),
    ("local-authority-type", 0, 0, 0),
    ("register", 267, 0, 0),
    ("territory", 0, 0, 0),
];

fn load(data: &Path, name: &str, file: &Path) -> String {
    ok(regis(&[
        "load",
        "--data",
        data.to_str().unwrap(),
        "--register",
        name,
        "--host",
        "regis.test",
        file.to_str().unwrap(),
    ]))
}

fn load_fixtures(data: &Path) {
    for (name, ..) in CENSUS {
        let file = regis_fixtures::path(format!("registers/registry-data/{name}.rsf"));
        load(data, name, &file);
    }
}

fn fsck_links(data: &Path) -> String {
    ok(regis(&[
        "fsck",
        "--links",
        "--data",
        data.to_str().unwrap(),
    ]))
}

fn key(data: &Path, name: &str) -> String {
    ok(regis(&[
        "key",
        "--data",
        data.to_str().unwrap(),
        "--register",
        name,
    ]))
    .lines()
    .find_map(|line| line.strip_prefix("log-public-key: "))
    .unwrap()
    .to_owned()
}

#[test]
fn fsck_counts_every_registers_links_and_history_loads_dangling_ones() {
    let data = tempfile::tempdir().unwrap();
    load_fixtures(data.path());
    let report = fsck_links(data.path());
    for (name, links, dangling, unresolvable) in CENSUS {
        let line =
            format!("{name}: {links} links, {dangling} dangling, {unresolvable} unresolvable");
        assert!(report.lines().any(|l| l == line), "{line}\n{report}");
    }
    // Registers loaded from history are warned of, not checked.
    let marker = data.path().join("registers/local-authority-eng/links.toml");
    assert_eq!(
        std::fs::read_to_string(marker).unwrap(),
        "links = \"warn\"\n"
    );

    // History with a dangling link loads; fsck then lists it.
    let patch = data.path().join("patch.rsf");
    let item = r#"{"local-authority-eng":"ZZA","local-authority-type":"NOPE","name":"Test"}"#;
    let hash = regis_model::Item::parse(item).unwrap().hash();
    std::fs::write(
        &patch,
        format!("add-item\t{item}\nappend-entry\tuser\tZZA\t2020-01-01T00:00:00Z\t{hash}\n"),
    )
    .unwrap();
    load(data.path(), "local-authority-eng", &patch);
    let report = fsck_links(data.path());
    assert!(
        report
            .lines()
            .any(|l| l == "local-authority-eng: 367 links, 1 dangling, 0 unresolvable"),
        "{report}"
    );
    assert!(
        report
            .contains("  ZZA: local-authority-type=\"NOPE\" -> local-authority-type:NOPE dangling"),
        "{report}"
    );
}

#[test]
fn get_links_verifies_each_linked_register_with_its_own_key() {
    let data = tempfile::tempdir().unwrap();
    for name in ["local-authority-type", "local-authority-eng"] {
        let file = regis_fixtures::path(format!("registers/registry-data/{name}.rsf"));
        load(data.path(), name, &file);
    }
    let (eng, kind) = (
        key(data.path(), "local-authority-eng"),
        key(data.path(), "local-authority-type"),
    );
    let serving = serve(data.path(), "127.0.0.1:0");
    let url = format!("{}/registers/local-authority-eng", serving.url);
    let link_key = format!("local-authority-type={kind}");
    let get = |link_keys: &[&str]| {
        let mut args = vec!["get", &url, "BRC", "--key", &eng, "--links"];
        for key in link_keys {
            args.extend(["--link-key", key]);
        }
        regis(&args)
    };
    let output = ok(get(&[&link_key]));
    assert!(
        output.contains("link local-authority-type=\"UA\" -> local-authority-type:UA: verified"),
        "{output}"
    );
    // Without the linked register's key, or with another's, it fails.
    let output = get(&[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("whose verifier key was not given"),
        "{}",
        text(&output.stderr)
    );
    let wrong = format!("local-authority-type={eng}");
    let output = get(&[&wrong]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("local-authority-type"),
        "{}",
        text(&output.stderr)
    );
}

/// A server that lies about a linked record (one hash of the target's
/// inclusion proof changed, what a server that serves a record the target
/// register never signed must do) is caught by `regis get --links`, which
/// names the link; the same record through the honest server verifies.
#[test]
fn get_links_catches_a_server_that_serves_a_target_with_a_bad_proof() {
    let data = tempfile::tempdir().unwrap();
    for name in ["local-authority-type", "local-authority-eng"] {
        let file = regis_fixtures::path(format!("registers/registry-data/{name}.rsf"));
        load(data.path(), name, &file);
    }
    let (eng, kind) = (
        key(data.path(), "local-authority-eng"),
        key(data.path(), "local-authority-type"),
    );
    let serving = serve(data.path(), "127.0.0.1:0");
    let upstream = serving.url.trim_start_matches("http://").to_owned();
    let lying = rewriting_proxy(upstream, |path, status, body| {
        if status != 200 || !path.contains("?links=1") {
            return body;
        }
        let mut bundle: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for link in bundle["links"].as_array_mut().unwrap() {
            let Some(proof) = link["tlog-proof"].as_str() else {
                continue;
            };
            // The first hash of the proof's path (the line after `index N`).
            let mut lines: Vec<String> = proof.split('\n').map(str::to_owned).collect();
            let at = lines
                .iter()
                .position(|line| line.starts_with("index "))
                .unwrap()
                + 1;
            let first = lines[at].remove(0);
            lines[at].insert(0, if first == 'A' { 'B' } else { 'A' });
            link["tlog-proof"] = serde_json::Value::from(lines.join("\n"));
        }
        bundle.to_string().into_bytes()
    });
    let link_key = format!("local-authority-type={kind}");
    let get = |base: &str| {
        let url = format!("{base}/registers/local-authority-eng");
        regis(&[
            "get",
            &url,
            "BRC",
            "--key",
            &eng,
            "--links",
            "--link-key",
            &link_key,
        ])
    };
    ok(get(&serving.url));
    let output = get(&format!("http://{lying}"));
    assert!(!output.status.success(), "{}", text(&output.stdout));
    let error = text(&output.stderr);
    assert!(
        error.contains("link local-authority-type=\"UA\" to register local-authority-type")
            && error.contains("does not verify"),
        "{error}"
    );
}
