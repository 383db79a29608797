//! `regis serve --demo` end to end: it prints its URL, the log's verifier
//! key and a curl command; the record proof it names verifies with that
//! key; SIGTERM stops it cleanly.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regis_merkle::leaf_hash;
use regis_note::{TlogProof, Verifier, Verifiers};

fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    (status, bytes[end + 4..].to_vec())
}

#[test]
fn serve_demo_prints_a_verifiable_record_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 8 {
        match lines.next() {
            Some(line) => printed.push(line.unwrap()),
            None => break,
        }
    }
    let text = printed.join("\n");
    let url = printed
        .iter()
        .find_map(|l| l.strip_prefix("register: "))
        .unwrap_or_else(|| panic!("{text}"));
    let key = printed
        .iter()
        .find_map(|l| l.strip_prefix("log verifier key: "))
        .unwrap();
    let curl = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("curl -s "))
        .unwrap();
    assert!(
        curl.starts_with(url) && curl.ends_with("/records/Fe/proof"),
        "{text}"
    );
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, base) = rest.split_at(rest.find('/').unwrap());

    let (status, body) = get(
        addr,
        &format!("{}.tlog-proof", &curl[url.len() - base.len()..]),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let proof = TlogProof::parse(&body).unwrap();
    let verifier = Verifier::parse(key).unwrap();
    proof
        .verify(
            &leaf_hash(proof.extra().unwrap()),
            verifier.name().as_str(),
            &verifier,
            &Verifiers::new([]).unwrap(),
        )
        .unwrap();

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `serve --demo` without `--data` keeps its data in a new private
/// directory of `$TMPDIR` under an unpredictable name, and removes it on
/// SIGTERM and on Ctrl-C (SIGINT); its log, not going to a terminal, has no
/// colour codes.
#[test]
fn serve_demo_uses_a_private_temporary_directory_and_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for signal in ["-TERM", "-INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let serving = lines.next().unwrap().unwrap();
        let (dir, addr) = serving
            .strip_prefix("regis: serving ")
            .and_then(|rest| rest.split_once(" on http://"))
            .unwrap_or_else(|| panic!("{serving}"));
        let dir = std::path::PathBuf::from(dir);
        // Served, so past start-up (its signal handlers are in place).
        assert_eq!(get(addr.trim_end_matches('/'), "/healthz").0, 200);
        assert_eq!(dir.parent(), Some(tmp.path()), "{serving}");
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("regis-demo-") && name != format!("regis-demo-{}", child.id()),
            "{name}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        assert!(dir.join("registers/element").is_dir());
        let killed = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{signal}: {status}: {log}");
        assert!(!dir.exists(), "{signal}: {} is left", dir.display());
        assert!(log.contains("shutting down"), "{log}");
        assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
        dirs.push(dir);
    }
    assert_ne!(dirs[0], dirs[1]);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A register whose store fails its open-time check (here: its `host`
/// edited, so its checkpoints no longer verify under the origins it
/// would serve) is not served: its requests are 503
/// `register-unavailable` naming the check, the others are served, and
/// `/readyz` is 503 naming the register, without a path.
#[test]
fn a_register_that_fails_its_open_check_is_unavailable_and_not_ready() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for (name, file) in [("country", "country.rsf"), ("territory", "territory.rsf")] {
        let file = regis_fixtures::path(format!("registers/registry-data/{file}"));
        common::ok(common::regis(&[
            "load",
            "--data",
            dir,
            "--register",
            name,
            "--host",
            "regis.test",
            file.to_str().unwrap(),
        ]));
    }
    std::fs::write(
        data.path().join("registers/territory/host"),
        "elsewhere.test",
    )
    .unwrap();
    let serving = common::serve(data.path(), "127.0.0.1:0");
    let addr = serving.url.trim_start_matches("http://");

    let (status, body) = get(addr, "/registers/territory/records");
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"register-unavailable\""), "{body}");
    assert!(body.contains("checkpoint"), "the check is named: {body}");
    assert!(!body.contains(dir), "{body}");
    assert_eq!(get(addr, "/registers/country/records/GB").0, 200);

    let (status, body) = get(addr, "/readyz");
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["problems"][0]["name"], "territory");
    assert_eq!(ready["problems"][0]["state"], "unavailable");
    assert!(!body.contains(dir), "{body}");
}
