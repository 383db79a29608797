//! `regis mirror` as a user runs it, against `regis serve` on a loopback
//! port: a synthetic register mirrored, checked by `regis fsck`, grown
//! upstream, then mirrored again by runs killed with SIGKILL at random
//! moments: each kill leaves the mirror at a whole upstream checkpoint,
//! and the next run resumes and ends identical to the upstream.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::http::{exchange, get, get_answer};
use crate::common::{free_port, ok, regis, serve};
use std::time::Duration;

use regis_model::{PerLog, RegisterName};
use regis_store::{Log, RedbBackend, Registry};

use crate::synthetic;

const BASE: u64 = 3_000;
const TOTAL: u64 = 9_000;

/// The base document and the tail that grows it to `TOTAL` entries.
fn documents(dir: &Path) -> [std::path::PathBuf; 2] {
    let base = dir.join("base.rsf");
    synthetic::write_synthetic(std::fs::File::create(&base).unwrap(), BASE).unwrap();
    let mut whole = Vec::new();
    synthetic::write_synthetic(&mut whole, TOTAL).unwrap();
    let skip = 1 + 2 * BASE as usize;
    let tail: Vec<&[u8]> = whole.split_inclusive(|b| *b == b'\n').skip(skip).collect();
    let update = dir.join("update.rsf");
    std::fs::write(&update, tail.concat()).unwrap();
    [base, update]
}

/// Each log's leaves, root and stored checkpoint, and the user records,
/// of register `name` in `data` (a mirror or one's own).
pub type Contents = (PerLog<(Vec<Vec<u8>>, [u8; 32], Option<String>)>, usize);

pub fn contents(data: &Path, mirror: bool, name: &str) -> Contents {
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new(name).unwrap();
    let store = if mirror {
        registry.open_mirror::<RedbBackend>(&name).unwrap().store
    } else {
        registry.open::<RedbBackend>(&name).unwrap().store
    };
    let snapshot = store.snapshot().unwrap();
    let logs = PerLog::from_fn(|log| {
        let size = snapshot.size(log);
        let checkpoint = snapshot.checkpoint(log).unwrap();
        if let Some(checkpoint) = &checkpoint {
            // A mirror holds nothing its stored checkpoint does not cover.
            assert_eq!(checkpoint.size, size);
        }
        (
            snapshot
                .entries(log, 1, size)
                .unwrap()
                .into_iter()
                .map(|(_, leaf)| leaf)
                .collect(),
            snapshot.root(log).unwrap(),
            checkpoint.map(|c| c.text),
        )
    });
    (
        logs,
        snapshot.records(Log::User, 0, u64::MAX).unwrap().len(),
    )
}

#[test]
fn mirror_fsck_then_resume_after_kill_9_ends_identical() {
    let work = tempfile::tempdir().unwrap();
    let [base, update] = documents(work.path());
    let up = work.path().join("up");
    let down = work.path().join("down");
    let (up_s, down_s) = (up.to_str().unwrap(), down.to_str().unwrap());
    ok(regis(&[
        "load",
        "--data",
        up_s,
        "--register",
        "synthetic",
        "--host",
        "regis.test",
        base.to_str().unwrap(),
    ]));
    let key = ok(regis(&["key", "--data", up_s, "--register", "synthetic"]))
        .lines()
        .find_map(|line| line.strip_prefix("log-public-key: "))
        .unwrap()
        .to_owned();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/registers/synthetic");

    let server = serve(&up, &format!("127.0.0.1:{port}"));
    let stdout = ok(regis(&["mirror", &url, "--key", &key, "--data", down_s]));
    assert!(
        stdout.starts_with(&format!(
            "mirrored synthetic from {url}: {BASE} user and 0 system entries copied, {BASE} new items; user log {BASE} entries"
        )),
        "{stdout}"
    );
    let fsck = ok(regis(&["fsck", "--data", down_s]));
    assert!(
        fsck.starts_with(&format!("synthetic: ok: {BASE} user and 0 system entries")),
        "{fsck}"
    );
    assert!(fsck.contains(", 2 checkpoints"), "{fsck}");
    let stdout = ok(regis(&["mirror", &url, "--key", &key, "--data", down_s]));
    assert!(
        stdout.contains(": 0 user and 0 system entries copied"),
        "{stdout}"
    );
    // Another key for the same mirror is refused, and changes nothing.
    let output = regis(&[
        "mirror",
        &url,
        "--key",
        &key.replace("regis.test", "other.test"),
        "--data",
        down_s,
    ]);
    assert!(!output.status.success());
    drop(server);
    let base_contents = contents(&down, true, "synthetic");
    assert_eq!(base_contents, contents(&up, false, "synthetic"));

    // The upstream grows; mirrors are killed at random moments while they
    // copy it.
    ok(regis(&[
        "load",
        "--data",
        up_s,
        "--register",
        "synthetic",
        update.to_str().unwrap(),
    ]));
    let expected = contents(&up, false, "synthetic");
    let server = serve(&up, &format!("127.0.0.1:{port}"));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(port);
    let mut kills = 0;
    // Kill delays are drawn below `window`, which grows after each kill
    // until a run outlives one.
    let mut window = Duration::from_millis(300);
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["mirror", &url, "--key", &key, "--data", down_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % window.as_micros() as u64);
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap();
        if finished.is_none() {
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        let now = contents(&down, true, "synthetic");
        // All of the sync or none of it.
        assert!(
            now == base_contents || now == expected,
            "after {kills} kills"
        );
        if finished.is_some() || now == expected {
            assert!(finished.is_none_or(|s| s.success()), "{status:?}");
            break;
        }
        kills += 1;
        window = (window * 3 / 2).min(Duration::from_secs(30));
        assert!(kills < 40, "no run finished");
    }
    eprintln!("{kills} mirror runs killed before one finished");
    assert!(kills > 0, "the first run finished before any kill");
    // One more run: it resumes from where the kills left it.
    let stdout = ok(regis(&["mirror", &url, "--key", &key, "--data", down_s]));
    assert!(
        stdout.contains(&format!("user log {TOTAL} entries")),
        "{stdout}"
    );
    drop(server);
    assert_eq!(contents(&down, true, "synthetic"), expected);
    let fsck = ok(regis(&["fsck", "--data", down_s]));
    assert!(
        fsck.starts_with(&format!("synthetic: ok: {TOTAL} user and 0 system entries")),
        "{fsck}"
    );

    // The mirror serves what it copied, under the upstream's signatures:
    // a client pinning the upstream's key verifies it in full.
    let mirror_port = free_port();
    let _served = serve(&down, &format!("127.0.0.1:{mirror_port}"));
    let mirror_url = format!("http://127.0.0.1:{mirror_port}/registers/synthetic");
    let verified = ok(regis(&["verify", &mirror_url, "--key", &key, "--full"]));
    assert!(
        verified.contains(&format!("replayed {TOTAL} entries")),
        "{verified}"
    );
}

/// A page for people: `path` asked for as a browser does.
fn page(addr: &str, path: &str) -> common::http::Answer {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).unwrap_or_else(|| panic!("{path}: no answer"))
}

/// Registers loaded with published history's slips (the project's quirk
/// fixtures) are served (the metadata, system entries, records and pages
/// read the definition from the stored system records, where a stray key
/// defines nothing), mirrored by `regis mirror` (which passes fsck and
/// serves the same), and verified in full against the upstream and the
/// mirror. An orphan item is kept where it was loaded, listed in the full
/// dump, and never reaches the mirror: no delta carries it.
#[test]
fn published_slips_serve_mirror_and_verify() {
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("up");
    let down = work.path().join("down");
    let (up_s, down_s) = (up.to_str().unwrap(), down.to_str().unwrap());
    let quirks = regis_fixtures::quirks();
    let mut keys = Vec::new();
    for quirk in &quirks {
        ok(regis(&[
            "load",
            "--data",
            up_s,
            "--register",
            &quirk.register,
            "--host",
            "regis.test",
            quirk.path.to_str().unwrap(),
        ]));
        let key = ok(regis(&[
            "key",
            "--data",
            up_s,
            "--register",
            &quirk.register,
        ]))
        .lines()
        .find_map(|line| line.strip_prefix("log-public-key: "))
        .unwrap()
        .to_owned();
        keys.push(key);
    }
    let orphans = |quirk: &regis_fixtures::Quirk| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&quirk.path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        quirk
            .warnings
            .iter()
            .filter_map(|w| Some((w.item.clone()?, lines[w.line as usize - 1].to_owned())))
            .collect()
    };

    let upstream = serve(&up, "127.0.0.1:0");
    let up_addr = upstream.url.trim_start_matches("http://").to_owned();
    for (quirk, key) in quirks.iter().zip(&keys) {
        let file = quirk.path.display().to_string();
        let base = format!("/registers/{}", quirk.register);
        let url = format!("{}{base}", upstream.url);
        let metadata = get(&up_addr, &format!("{base}/register"));
        assert_eq!(
            metadata["total-system-entries"], quirk.system_entries,
            "{file}"
        );
        assert_eq!(
            metadata["register-record"]["register"],
            quirk.register.as_str(),
            "{file}"
        );
        let system = get(&up_addr, &format!("{base}/entries?type=system"));
        assert_eq!(
            system.as_array().unwrap().len() as u64,
            quirk.system_entries,
            "{file}"
        );
        let records = get(&up_addr, &format!("{base}/records"));
        assert_eq!(
            Some(records.as_object().unwrap().len() as u64),
            metadata["total-records"].as_u64(),
            "{file}"
        );
        for path in [
            base.clone(),
            format!("{base}/entries?type=system"),
            format!("{base}/records"),
        ] {
            assert_eq!(page(&up_addr, &path).status, 200, "{file}: {path}");
        }
        let verified = ok(regis(&[
            "verify",
            &url,
            "--key",
            key,
            "--full",
            "--records",
        ]));
        assert!(
            verified.contains(&format!("replayed {} entries", quirk.user_entries)),
            "{file}: {verified}"
        );
        let stdout = ok(regis(&["mirror", &url, "--key", key, "--data", down_s]));
        assert!(
            stdout.contains(&format!(
                ": {} user and {} system entries copied",
                quirk.user_entries, quirk.system_entries
            )),
            "{file}: {stdout}"
        );
        let dump = get_answer(&up_addr, &format!("{base}/download-rsf"))
            .unwrap()
            .text();
        for (item, line) in orphans(quirk) {
            let answer = get_answer(&up_addr, &format!("{base}/items/{item}")).unwrap();
            assert_eq!(answer.status, 200, "{file}: {item}");
            assert!(dump.contains(&format!("{line}\n")), "{file}: {line}");
        }
    }
    drop(upstream);
    let fsck = ok(regis(&["fsck", "--data", down_s]));
    assert_eq!(fsck.lines().count(), quirks.len(), "{fsck}");

    let mirror = serve(&down, "127.0.0.1:0");
    let mirror_addr = mirror.url.trim_start_matches("http://").to_owned();
    for (quirk, key) in quirks.iter().zip(&keys) {
        let file = quirk.path.display().to_string();
        let base = format!("/registers/{}", quirk.register);
        let metadata = get(&mirror_addr, &format!("{base}/register"));
        assert_eq!(metadata["root-hash"], quirk.root.as_str(), "{file}");
        assert_eq!(
            metadata["system-root-hash"],
            quirk.system_root.as_str(),
            "{file}"
        );
        let path = format!("{base}/entries?type=system");
        assert_eq!(page(&mirror_addr, &path).status, 200, "{file}: {path}");
        let url = format!("{}{base}", mirror.url);
        let verified = ok(regis(&[
            "verify",
            &url,
            "--key",
            key,
            "--full",
            "--records",
        ]));
        assert!(
            verified.contains(&format!("replayed {} entries", quirk.user_entries)),
            "{file}: {verified}"
        );
        for (item, _) in orphans(quirk) {
            let answer = get_answer(&mirror_addr, &format!("{base}/items/{item}")).unwrap();
            assert_eq!(answer.status, 404, "{file}: {item}");
        }
    }
}
