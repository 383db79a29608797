//! The clients against a static copy (issue 18): `regis get`, `verify
//! [--full]`, `mirror` and `audit` given the base URL of a copy made from
//! a real `regis serve` (`common/static_copy.rs`), with the origin stopped
//! before they run, so that what they print can only come from the copy.
//! Each answers as against the origin; each object altered is caught with
//! an error naming it; a 403 for a missing key is taken as a 404; and a
//! partial object deleted between a reader's checkpoint and its reads
//! sends the reader back to the newer checkpoint.

use std::path::{Path, PathBuf};
use std::process::Output;

use regis_store::Log;

use crate::common::static_copy::{Publication, StaticCopy, Superseded};
use crate::common::{free_port, ok, regis, serve, text};
use crate::interop::GoVerifier;
use crate::mirror::contents;
use crate::synthetic;

const LOCAL_AUTHORITY: &str = "registers/registry-data/local-authority-eng.rsf";

/// A register in a data directory, grown one document at a time, and
/// served only while it is read for a publication.
struct Origin {
    data: PathBuf,
    name: &'static str,
    port: u16,
}

impl Origin {
    fn new(dir: &Path, name: &'static str) -> Origin {
        Origin {
            data: dir.join("origin"),
            name,
            port: free_port(),
        }
    }

    fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn load(&self, file: &Path) {
        ok(regis(&[
            "load",
            "--data",
            self.data(),
            "--register",
            self.name,
            "--host",
            "regis.test",
            file.to_str().unwrap(),
        ]));
    }

    fn key(&self) -> String {
        ok(regis(&[
            "key",
            "--data",
            self.data(),
            "--register",
            self.name,
        ]))
        .lines()
        .find_map(|line| line.strip_prefix("log-public-key: "))
        .unwrap()
        .to_owned()
    }

    /// `regis ARGS` against the origin, serving for the while.
    fn run_served(&self, args: &[&str]) -> String {
        let server = serve(&self.data, &format!("127.0.0.1:{}", self.port));
        let url = format!("{}/registers/{}", server.url, self.name);
        let args: Vec<&str> = args
            .iter()
            .map(|arg| if *arg == "URL" { url.as_str() } else { arg })
            .collect();
        ok(regis(&args))
    }

    /// What a publisher would upload now.
    fn publication(&self) -> Publication {
        let _server = serve(&self.data, &format!("127.0.0.1:{}", self.port));
        Publication::read(&format!("127.0.0.1:{}", self.port), self.name)
    }
}

/// `rsf` cut into documents after the `at[i]`-th user entry each, the
/// last holding the rest: the first holds everything before its first
/// user entry too (items, system entries). `assert-root-hash` lines are
/// left out but the first (the empty tree's).
fn documents(dir: &Path, rsf: &[u8], at: &[u64]) -> Vec<PathBuf> {
    let mut documents = vec![Vec::new()];
    let mut users = 0;
    for (number, line) in rsf.split_inclusive(|b| *b == b'\n').enumerate() {
        if number > 0 && line.starts_with(b"assert-root-hash\t") {
            continue;
        }
        if line.starts_with(b"append-entry\tuser\t") {
            if at.get(documents.len() - 1) == Some(&users) {
                documents.push(Vec::new());
            }
            users += 1;
        }
        documents.last_mut().unwrap().extend_from_slice(line);
    }
    documents
        .into_iter()
        .enumerate()
        .map(|(index, bytes)| {
            let path = dir.join(format!("document-{index}.rsf"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// An RSF document appending a system entry: a new custodian.
fn custodian(dir: &Path, name: &str) -> PathBuf {
    let item = format!("{{\"custodian\":\"{name}\"}}");
    let hash = regis_model::Item::parse(&item).unwrap().hash();
    let path = dir.join(format!("custodian-{name}.rsf"));
    std::fs::write(
        &path,
        format!(
            "add-item\t{item}\nappend-entry\tsystem\tcustodian\t2020-01-01T00:00:00Z\t{hash}\n"
        ),
    )
    .unwrap();
    path
}

/// One line on stderr naming `reason`, and a failure status.
fn fails(output: &Output, reason: &str) -> String {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    stderr
}

/// The requests of a client run that the copy had no object for: the
/// origin's endpoints tried first.
fn origin_only(copy: &StaticCopy, name: &str) -> Vec<String> {
    let prefix = format!("/registers/{name}/");
    copy.take_requests()
        .into_iter()
        .filter(|request| copy.object(request).is_none())
        .map(|request| request.trim_start_matches(&prefix).to_owned())
        .collect()
}

#[test]
fn get_verify_and_audit_read_a_static_copy_of_a_real_register() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    let rsf = std::fs::read(regis_fixtures::path(LOCAL_AUTHORITY)).unwrap();
    let [first, rest] = documents(work.path(), &rsf, &[300]).try_into().unwrap();
    origin.load(&first);
    origin.load(&rest);
    let key = origin.key();
    // What the origin answers, to compare with.
    let from_origin: Vec<String> = [["get", "URL", "BIR"], ["get", "URL", "BAS"]]
        .iter()
        .map(|args| origin.run_served(&[args[0], args[1], args[2], "--key", &key]))
        .collect();
    let verified_at_origin = origin.run_served(&["verify", "URL", "--key", &key, "--full"]);
    assert!(
        verified_at_origin.contains("replayed 387 entries"),
        "{verified_at_origin}"
    );

    let copy = StaticCopy::start();
    copy.publish(&origin.publication(), Superseded::Full);
    let url = copy.url(origin.name);
    for status in [404, 403] {
        copy.set_missing(status);
        copy.take_requests();
        // BIR's latest entry (358 of 387) is in the partial bundle, BAS's
        // only one is entry 1: every bundle is read back to it.
        for (record, expected) in ["BIR", "BAS"].iter().zip(&from_origin) {
            let got = ok(regis(&["get", &url, record, "--key", &key]));
            assert_eq!(&got, expected);
            assert_eq!(
                origin_only(&copy, origin.name),
                [format!("records/{record}/proof.tlog-proof")]
            );
        }
        assert!(
            from_origin[0].contains("\"entry-number\":\"358\""),
            "{}",
            from_origin[0]
        );
        let absent = fails(
            &regis(&["get", &url, "XXX", "--key", &key]),
            "none of the 387 entries of checkpoint 387 has the key \"XXX\": every entry was read",
        );
        assert!(absent.starts_with("regis: "), "{absent}");
        copy.take_requests();

        let verified = ok(regis(&["verify", &url, "--key", &key, "--full"]));
        assert_eq!(verified, verified_at_origin);
        // The delta the origin would give, then the chunks 0/256, 256/387.
        assert_eq!(
            origin_only(&copy, origin.name),
            ["download-rsf/0/387?system-size=18"]
        );
        let output = regis(&["verify", &url, "--key", &key, "--full", "--records"]);
        fails(
            &output,
            "no list of records here (a static copy has none) to compare",
        );
        assert!(text(&output.stdout).contains("replayed 387 entries"));
    }
    copy.set_missing(404);

    // An auditor trusts the copy on first use, then follows it as it
    // grows: consistency from the copy's tiles.
    let state = work.path().join("audit.json");
    let audit = || {
        regis(&[
            "audit",
            &url,
            "--key",
            &key,
            "--state",
            state.to_str().unwrap(),
        ])
    };
    copy.take_requests();
    let first_audit = ok(audit());
    assert!(
        first_audit.contains("user log: checkpoint 387"),
        "{first_audit}"
    );
    origin.load(&custodian(work.path(), "Someone Else"));
    let grown = work.path().join("grown.rsf");
    std::fs::write(&grown, synthetic_countries(20)).unwrap();
    origin.load(&grown);
    copy.publish(&origin.publication(), Superseded::Full);
    let second_audit = ok(audit());
    assert!(
        second_audit
            .contains("user log: checkpoint 407 is consistent with the saved checkpoint 387")
            && second_audit
                .contains("system log: checkpoint 19 is consistent with the saved checkpoint 18"),
        "{second_audit}"
    );
    assert_eq!(origin_only(&copy, origin.name), Vec::<String>::new());
}

/// `count` user entries for local-authority-eng (keys `ZZ1`…).
fn synthetic_countries(count: usize) -> String {
    let mut rsf = String::new();
    for i in 1..=count {
        let item = format!("{{\"local-authority-eng\":\"ZZ{i}\",\"name\":\"Made up {i}\"}}");
        let hash = regis_model::Item::parse(&item).unwrap().hash();
        rsf.push_str(&format!("add-item\t{item}\n"));
        rsf.push_str(&format!(
            "append-entry\tuser\tZZ{i}\t2020-01-01T00:00:00Z\t{hash}\n"
        ));
    }
    rsf
}

/// The mirror of `url` in `data`, synced once: its summary line.
fn mirror(url: &str, key: &str, data: &Path) -> String {
    ok(regis(&[
        "mirror",
        url,
        "--key",
        key,
        "--data",
        data.to_str().unwrap(),
    ]))
}

#[test]
fn mirrors_sync_from_a_static_copy_across_chunk_boundaries() {
    const SIZES: [u64; 8] = [0, 1, 255, 256, 257, 511, 512, 513];
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "synthetic");
    let mut rsf = Vec::new();
    synthetic::write_synthetic(&mut rsf, 513).unwrap();
    let documents = documents(work.path(), &rsf, &SIZES);
    let copy = StaticCopy::start();
    let url = copy.url(origin.name);
    let incremental = work.path().join("incremental");
    let mut key = String::new();
    for (index, (size, document)) in SIZES.iter().zip(&documents).enumerate() {
        // A bucket that does not let the reader list it, every other size.
        copy.set_missing(if index % 2 == 0 { 404 } else { 403 });
        origin.load(document);
        if key.is_empty() {
            key = origin.key();
        }
        // A system entry at user size 256, after the user entries: the
        // chunk 0/256 holds it, and the chain from 256 starts there.
        if *size == 256 {
            origin.load(&custodian(work.path(), "At 256"));
        }
        let publication = origin.publication();
        assert_eq!(publication.sizes.0, *size);
        copy.publish(&publication, Superseded::Full);
        let expected = contents(&origin.data, false, origin.name);

        let summary = mirror(&url, &key, &incremental);
        assert!(
            summary.contains(&format!("user log {size} entries")),
            "{summary}"
        );
        assert_eq!(
            contents(&incremental, true, origin.name),
            expected,
            "{size}"
        );
        let first = work.path().join(format!("first-{size}"));
        let summary = mirror(&url, &key, &first);
        assert!(
            summary.contains(&format!(": {size} user and ")),
            "{summary}"
        );
        assert_eq!(contents(&first, true, origin.name), expected, "{size}");
        ok(regis(&["fsck", "--data", first.to_str().unwrap()]));
    }
    assert_eq!(
        contents(&incremental, true, origin.name).0.system.0.len(),
        1,
        "the system entry at 256"
    );
}

#[test]
fn system_entries_beyond_the_checkpoint_in_a_tail_are_left_to_the_next_sync() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    let rsf = std::fs::read(regis_fixtures::path(LOCAL_AUTHORITY)).unwrap();
    let [first, then, rest] = documents(work.path(), &rsf, &[280, 300])
        .try_into()
        .unwrap();
    origin.load(&first);
    let key = origin.key();
    let copy = StaticCopy::start();
    let url = copy.url(origin.name);
    copy.publish(&origin.publication(), Superseded::Full);
    let mirrored = work.path().join("mirror");
    mirror(&url, &key, &mirrored);
    origin.load(&then);
    let at_300 = origin.publication();
    let expected = contents(&origin.data, false, origin.name);

    // A system entry appended at user size 300, at once: a publication
    // under way has uploaded its tail and tiles, not yet its checkpoints.
    origin.load(&custodian(work.path(), "Beyond"));
    let beyond = origin.publication();
    assert_eq!((at_300.sizes, beyond.sizes), ((300, 18), (300, 19)));
    copy.publish(&at_300, Superseded::Full);
    copy.upload(&beyond);
    // From 280 the chain starts at 256, past the system entries' start:
    // the one it finds is none it holds, so beyond the checkpoint.
    let summary = mirror(&url, &key, &mirrored);
    assert!(
        summary.contains(": 20 user and 0 system entries copied"),
        "{summary}"
    );
    assert_eq!(contents(&mirrored, true, origin.name), expected);
    let verified = ok(regis(&["verify", &url, "--key", &key, "--full"]));
    assert!(verified.contains("replayed 300 entries"), "{verified}");
    let fresh = work.path().join("fresh");
    let summary = mirror(&url, &key, &fresh);
    assert!(
        summary.contains(": 300 user and 18 system entries copied"),
        "{summary}"
    );
    assert_eq!(contents(&fresh, true, origin.name), expected);

    // Published: the next sync copies it, from the tail alone, where its
    // number is found by its leaf hash; a tail without it is caught.
    copy.publish(&beyond, Superseded::Full);
    let tail = "/registers/local-authority-eng/download-rsf/256/300";
    copy.alter(tail, |bytes| {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.starts_with("append-entry\tsystem"))
            .unwrap();
        *bytes = [&lines[..at - 1], &lines[at + 1..]]
            .concat()
            .join("\n")
            .into_bytes();
        bytes.push(b'\n');
    });
    fails(
        &regis(&[
            "mirror",
            &url,
            "--key",
            &key,
            "--data",
            mirrored.to_str().unwrap(),
        ]),
        &format!(
            "{tail}, line 90: the chunks end with 18 system entries, but the system checkpoint has 19"
        ),
    );
    assert_eq!(contents(&mirrored, true, origin.name), expected);
    copy.publish(&beyond, Superseded::Full);
    copy.take_requests();
    let summary = mirror(&url, &key, &mirrored);
    assert!(
        summary.contains(": 0 user and 1 system entries copied"),
        "{summary}"
    );
    let chunks: Vec<String> = copy
        .take_requests()
        .into_iter()
        .filter(|request| request.contains("download-rsf"))
        .collect();
    assert_eq!(
        chunks,
        [
            "/registers/local-authority-eng/download-rsf/300/300?system-size=18",
            "/registers/local-authority-eng/download-rsf/256/300",
        ]
    );
    origin.load(&rest);
    copy.publish(&origin.publication(), Superseded::Full);
    let summary = mirror(&url, &key, &mirrored);
    assert!(
        summary.contains(": 87 user and 0 system entries copied"),
        "{summary}"
    );
    assert_eq!(
        contents(&mirrored, true, origin.name),
        contents(&origin.data, false, origin.name)
    );
}

#[test]
fn a_partial_object_deleted_after_the_checkpoint_was_read_sends_readers_to_the_newer_one() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    let rsf = std::fs::read(regis_fixtures::path(LOCAL_AUTHORITY)).unwrap();
    let [first, rest] = documents(work.path(), &rsf, &[200]).try_into().unwrap();
    origin.load(&first);
    let key = origin.key();
    let older = origin.publication();
    origin.load(&rest);
    let newer = origin.publication();
    // Each reader reads the checkpoints of 200 (a mirror reads the system
    // one last); the copy then publishes 387 and deletes partial objects
    // of 200 before it answers again.
    for (superseded, after, nth, args) in [
        (Superseded::Older, "/log/checkpoint", 1, vec!["get", "BIR"]),
        // The record's item is read after the system checkpoint: its tail
        // (0/200) is what is gone.
        (
            Superseded::Full,
            "/system-log/checkpoint",
            1,
            vec!["get", "BAS"],
        ),
        (
            Superseded::Full,
            "/log/checkpoint",
            1,
            vec!["verify", "--full"],
        ),
        (
            Superseded::Older,
            "/system-log/checkpoint",
            1,
            vec!["audit"],
        ),
        (
            Superseded::Full,
            "/system-log/checkpoint",
            2,
            vec!["mirror"],
        ),
    ] {
        let copy = StaticCopy::start();
        copy.publish(&older, Superseded::Full);
        copy.publish_after(after, nth, newer.clone(), superseded);
        let url = copy.url(origin.name);
        let state = work.path().join(format!("{}.json", args[0]));
        let mirrored = work.path().join("mirror");
        let mut line = vec![args[0], &url];
        line.extend(&args[1..]);
        line.extend(["--key", &key]);
        match args[0] {
            "audit" => line.extend(["--state", state.to_str().unwrap()]),
            "mirror" => line.extend(["--data", mirrored.to_str().unwrap()]),
            _ => {}
        }
        let printed = ok(regis(&line));
        assert!(printed.contains("387"), "{args:?}: {printed}");
        let missing = origin_only(&copy, origin.name);
        let gone = if args.ends_with(&["BAS"]) {
            "download-rsf/0/200"
        } else {
            ".p/"
        };
        assert!(
            missing.iter().any(|path| path.contains(gone)),
            "{args:?}: {missing:?}"
        );
    }
    assert_eq!(
        contents(&work.path().join("mirror"), true, origin.name),
        contents(&origin.data, false, origin.name)
    );
}

#[test]
fn every_altered_object_of_a_static_copy_is_caught_and_named() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    origin.load(&regis_fixtures::path(LOCAL_AUTHORITY));
    let key = origin.key();
    let publication = origin.publication();
    let base = "/registers/local-authority-eng";
    // (object, how it is altered, what the client runs, what it says)
    type Alter = fn(&mut Vec<u8>);
    let flip_last_hex: Alter = |bytes| {
        let at = bytes.iter().rposition(|b| b.is_ascii_hexdigit()).unwrap();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    };
    let flip_middle: Alter = |bytes| {
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
    };
    let cases: Vec<(String, Alter, Vec<&str>, String)> = vec![
        (
            format!("{base}/log/tile/entries/001.p/131"),
            flip_middle,
            // Read back to entry 1: past the altered leaf.
            vec!["get", "BAS"],
            "in tile/entries/001.p/131 does not hash to the verified leaf hash of the log".into(),
        ),
        (
            format!("{base}/system-log/tile/0/000.p/18"),
            flip_middle,
            vec!["audit"],
            "hash tiles of the tree of size 18: the right-edge tiles of the tree of size 18 do not hash to its root".into(),
        ),
        (
            format!("{base}/log/tile/entries/000"),
            |bytes| {
                // A letter of the first leaf's key.
                let at = bytes.windows(6).position(|w| w == b"\"key\":").unwrap() + 7;
                bytes[at] ^= 0x20;
            },
            vec!["get", "BAS"],
            "entry 1 in tile/entries/000 does not hash to the verified leaf hash of the log"
                .into(),
        ),
        (
            format!("{base}/log/tile/0/000"),
            flip_middle,
            vec!["verify", "--full"],
            "tile/0/000 does not hash to its parent in the tile level above".into(),
        ),
        (
            format!("{base}/log/tile/0/001.p/131"),
            flip_middle,
            vec!["verify"],
            "the right-edge tiles of the tree of size 387 do not hash to its root".into(),
        ),
        (
            format!("{base}/log/checkpoint"),
            |bytes| {
                // A letter of the root hash (line 3): still base64.
                let second = (0..bytes.len()).filter(|at| bytes[*at] == b'\n').nth(1).unwrap();
                let at = (second..bytes.len()).find(|at| bytes[*at].is_ascii_alphabetic()).unwrap();
                bytes[at] ^= 0x20;
            },
            vec!["verify"],
            "does not verify with the pinned key".into(),
        ),
        (
            format!("{base}/download-rsf/0/256"),
            |bytes| {
                // The timestamp of the first user entry.
                let at = bytes.windows(18).position(|w| w == b"append-entry\tuser\t").unwrap();
                let at = at + bytes[at..].iter().position(|b| *b == b'2').unwrap() + 3;
                bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
            },
            vec!["verify", "--full"],
            format!("user entry 1 of http://ADDR{base}/download-rsf/0/256 does not hash to the verified leaf hash of the log"),
        ),
        (
            format!("{base}/download-rsf/256/387"),
            flip_last_hex,
            vec!["verify", "--full"],
            format!(
                "{base}/download-rsf/256/387, line 264: assert-root-hash is not the root of the user log at size 387"
            ),
        ),
        (
            format!("{base}/download-rsf/256/387"),
            |bytes| {
                // A letter of the last item.
                let at = bytes.windows(8).rposition(|w| w == b"\"name\":\"").unwrap() + 8;
                bytes[at] ^= 0x20;
            },
            vec!["get", "BPC"],
            "hashes to".into(),
        ),
    ];
    for (path, alter, args, says) in cases {
        let copy = StaticCopy::start();
        copy.publish(&publication, Superseded::Full);
        copy.alter(&path, alter);
        let url = copy.url(origin.name);
        let state = work.path().join("audit.json");
        let mut line = vec![args[0], &url];
        line.extend(&args[1..]);
        line.extend(["--key", &key]);
        if args[0] == "audit" {
            line.extend(["--state", state.to_str().unwrap()]);
        }
        let says = says.replace(
            "ADDR",
            url.trim_start_matches("http://").split('/').next().unwrap(),
        );
        fails(&regis(&line), &says);
    }

    // A mirror of a lying copy stores nothing.
    let copy = StaticCopy::start();
    copy.publish(&publication, Superseded::Full);
    copy.alter(&format!("{base}/download-rsf/256/387"), flip_middle);
    let mirrored = work.path().join("mirror");
    let output = regis(&[
        "mirror",
        &copy.url(origin.name),
        "--key",
        &key,
        "--data",
        mirrored.to_str().unwrap(),
    ]);
    fails(&output, "download-rsf/256/387");
    assert!(!mirrored.join("registers/local-authority-eng").exists());
}

#[test]
fn gos_tlog_verifier_reads_the_static_copy_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    origin.load(&regis_fixtures::path(LOCAL_AUTHORITY));
    let keys = ok(regis(&[
        "key",
        "--data",
        origin.data(),
        "--register",
        origin.name,
    ]));
    let copy = StaticCopy::start();
    copy.publish(&origin.publication(), Superseded::Full);
    let go = GoVerifier::build(work.path());
    for (log, prefix, size) in [
        (Log::User, "log-public-key: ", 387),
        (Log::System, "system-log-public-key: ", 18),
    ] {
        let key = keys
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap();
        let name = key.split('+').next().unwrap();
        let output = go.run_at(&format!("{}/", copy.url(origin.name)), log, key, name);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
        assert!(
            stdout.contains(&format!("entries: all {size} hash to their tile leaves"))
                && stdout.contains("inclusion and consistency proofs: ok"),
            "{stdout}"
        );
    }
}

/// A static copy has no `B/events`: `mirror --follow` syncs again at each
/// retry of the stream (1 s, doubling to 60 s), so it still follows.
#[test]
fn mirror_follow_polls_a_static_copy() {
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::new(work.path(), "local-authority-eng");
    let rsf = std::fs::read(regis_fixtures::path(LOCAL_AUTHORITY)).unwrap();
    let [first, rest] = documents(work.path(), &rsf, &[300]).try_into().unwrap();
    origin.load(&first);
    let key = origin.key();
    let copy = StaticCopy::start();
    copy.publish(&origin.publication(), Superseded::Full);
    origin.load(&rest);
    let newer = origin.publication();
    let url = copy.url(origin.name);
    let data = work.path().join("mirror");
    /// Killed when dropped, a failed assertion too.
    struct Following(std::process::Child);
    impl Drop for Following {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Following(
        std::process::Command::new(env!("CARGO_BIN_EXE_regis"))
            .args(["mirror", &url, "--key", &key, "--follow", "--data"])
            .arg(&data)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout) {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        received
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap()
    };
    assert!(next().contains("user log 300 entries"));
    copy.publish(&newer, Superseded::Full);
    let synced = next();
    drop(child);
    reader.join().unwrap();
    assert!(
        synced.contains(": 87 user and 0 system entries copied")
            && synced.contains("user log 387 entries"),
        "{synced}"
    );
}
