//! `regis mirror` as a user runs it, against `regis serve` on a loopback
//! port: a synthetic register mirrored, checked by `regis fsck`, grown
//! upstream, then mirrored again by runs killed with SIGKILL at random
//! moments: each kill leaves the mirror at a whole upstream checkpoint,
//! and the next run resumes and ends identical to the upstream.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{free_port, ok, regis, serve};
use std::time::Duration;

use regis_store::{Log, RedbBackend, RegisterName, Registry};

// The synthetic register of regis-model's benchmarks, shared rather than
// copied.
#[allow(dead_code)]
#[path = "../../regis-model/benches/synthetic/mod.rs"]
mod synthetic;

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

/// Both logs' leaves, roots and stored checkpoints, and the user records,
/// of register `synthetic` in `data` (a mirror or one's own).
type Contents = (Vec<Vec<u8>>, [u8; 32], Option<String>, u64, usize);

fn contents(data: &Path, mirror: bool) -> Contents {
    let registry = Registry::new(data, "regis.test");
    let name = RegisterName::new("synthetic").unwrap();
    let store = if mirror {
        registry.open_mirror::<RedbBackend>(&name).unwrap().store
    } else {
        registry.open::<RedbBackend>(&name).unwrap().store
    };
    let snapshot = store.snapshot().unwrap();
    let size = snapshot.size(Log::User);
    let checkpoint = snapshot.checkpoint(Log::User).unwrap();
    if let Some(checkpoint) = &checkpoint {
        // A mirror holds nothing its stored checkpoint does not cover.
        assert_eq!(checkpoint.size, size);
    }
    (
        snapshot
            .entries(Log::User, 1, size)
            .unwrap()
            .into_iter()
            .map(|(_, leaf)| leaf)
            .collect(),
        snapshot.root(Log::User).unwrap(),
        checkpoint.map(|c| c.text),
        snapshot.size(Log::System),
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
    let base_contents = contents(&down, true);
    assert_eq!(base_contents, contents(&up, false));

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
    let expected = contents(&up, false);
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
        let now = contents(&down, true);
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
    assert_eq!(contents(&down, true), expected);
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
