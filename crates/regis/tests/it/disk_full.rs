//! The server on a small tmpfs that 16 writers fill (issue 14). With no
//! free-space reserve the store meets a real ENOSPC: every write answer is
//! a receipt or a 507/503 JSON `disk-full`/`disk-error`, reads stay 200,
//! `/readyz` reports the problem without a path; once the tmpfs grows,
//! writes resume by themselves; after kill -9 and a restart every
//! acknowledged entry is there, every checkpoint handed out is consistent
//! with the last (no fork), and `regis fsck` is clean. With a reserve,
//! writes are refused with 507 before the disk is full and no write fails
//! in the store.
//!
//! The tmpfs is mounted directly when running as root, otherwise in a user
//! and mount namespace (`unshare`) that a holder process keeps alive, every
//! command then running in it through `nsenter`.
//! `REGIS_DISK_FULL_NAMESPACE=1` takes the namespace path even as root.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::http::{exchange, get, get_answer, get_text};
use regis_merkle::verify_consistency;
use regis_note::{SignedCheckpoint, Verifier, Verifiers};

const WRITERS: usize = 16;
const B: &str = "/registers/element";
const REGIS: &str = env!("CARGO_BIN_EXE_regis");

/// The two phases share the machine's two cores badly; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A tmpfs of a few MiB at `dir`, unmounted when dropped.
struct SmallDisk {
    /// Holds `dir` and the configuration files (outside the tmpfs).
    base: tempfile::TempDir,
    dir: PathBuf,
    /// The process holding the namespace the tmpfs lives in, if any; its
    /// standard input closing ends it, and with it the mount.
    holder: Option<Child>,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let size = format!("size={mib}m");
        let namespace_only = std::env::var_os("REGIS_DISK_FULL_NAMESPACE").is_some();
        if !namespace_only {
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
                .arg(&dir)
                .output()
                .expect("running mount");
            if mounted.status.success() {
                return SmallDisk {
                    base,
                    dir,
                    holder: None,
                };
            }
            let why = String::from_utf8_lossy(&mounted.stderr).to_lowercase();
            assert!(
                ["superuser", "permission", "not permitted"]
                    .iter()
                    .any(|word| why.contains(word)),
                "mount -t tmpfs failed, not for want of permission: {why}"
            );
        }
        let mut holder = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o {size} tmpfs \"$0\" && echo mounted && exec cat >/dev/null"
            ))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let mut why = String::new();
            holder
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut why)
                .unwrap();
            let _ = holder.wait();
            panic!(
                "this test needs a small tmpfs: mount -t tmpfs needs root, and \
                 `unshare --user --map-root-user --mount` failed too: {why}"
            );
        }
        SmallDisk {
            base,
            dir,
            holder: Some(holder),
        }
    }

    /// `program`, run where the tmpfs is mounted.
    fn command(&self, program: &str) -> Command {
        match &self.holder {
            None => Command::new(program),
            Some(holder) => {
                let mut command = Command::new("nsenter");
                command.args(["-t", &holder.id().to_string()]).args([
                    "-U",
                    "-m",
                    "--preserve-credentials",
                    "--",
                    program,
                ]);
                command
            }
        }
    }

    /// `regis COMMAND --data DIR ARGS` where the tmpfs is mounted.
    fn regis(&self, args: &[&str]) -> Command {
        let mut command = self.command(REGIS);
        command
            .arg(args[0])
            .arg("--data")
            .arg(&self.dir)
            .args(&args[1..]);
        command
    }

    fn resize(&self, mib: u32) {
        let output = self
            .command("mount")
            .args(["-o", &format!("remount,size={mib}m"), "tmpfs"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "remounting the tmpfs: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A configuration file with these `[limits]`.
    fn config(&self, name: &str, limits: &str) -> PathBuf {
        let path = self.base.path().join(name);
        std::fs::write(&path, format!("[limits]\n{limits}\n")).unwrap();
        path
    }

    /// Whether `text` names the data directory.
    fn names_dir(&self, text: &str) -> bool {
        let tmp = self.base.path().file_name().unwrap().to_str().unwrap();
        text.contains(self.dir.to_str().unwrap()) || text.contains(tmp)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        match self.holder.take() {
            Some(mut holder) => {
                drop(holder.stdin.take());
                if holder.wait().is_err() {
                    let _ = holder.kill();
                }
            }
            None => {
                let unmounted = Command::new("umount").arg(&self.dir).status();
                if !unmounted.is_ok_and(|status| status.success()) {
                    let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
                }
            }
        }
    }
}

/// A running `regis serve`, killed when dropped, its address and log.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(disk: &SmallDisk, config: &Path) -> Server {
        let mut child = disk
            .regis(&["serve", "--demo", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let Some(Ok(line)) = stdout.next() else {
                panic!(
                    "the server printed no address: {}",
                    log.lock().unwrap().join("\n")
                );
            };
            if let Some(rest) = line.strip_prefix("regis: serving ") {
                let url = rest.rsplit(" on ").next().unwrap();
                break url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
            }
        };
        std::thread::spawn(move || for _ in stdout {});
        Server { child, addr, log }
    }

    /// Stops the server with `signal` and waits for it.
    fn stop(mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn number(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// What a writer was told of one entry.
struct Ack {
    number: u64,
    key: String,
    item_hash: String,
}

/// Everything the writers were told, and what went wrong.
#[derive(Default)]
struct Outcomes {
    acks: Vec<Ack>,
    /// The signed checkpoint text of each receipt.
    checkpoints: Vec<String>,
    /// Refusals by status and code.
    refusals: BTreeMap<(u16, String), usize>,
    /// Answers the contract does not allow.
    bad: Vec<String>,
    /// The first few distinct refusal messages.
    messages: Vec<String>,
}

impl Outcomes {
    fn refused(&self) -> usize {
        self.refusals.values().sum()
    }
}

/// Posts a batch of `count` entries with keys `{prefix}i{i}`, and files
/// the answer in `outcomes`. Returns the status (0: no answer).
fn post_batch(
    addr: &str,
    token: &str,
    prefix: &str,
    count: usize,
    disk: &SmallDisk,
    outcomes: &Mutex<Outcomes>,
) -> u16 {
    let items: Vec<_> = (0..count)
        .map(|i| {
            let key = format!("{prefix}i{i}");
            serde_json::json!({
                "key": key,
                "item": {
                    "element": key,
                    "name": format!("{prefix} {i} {}", "x".repeat(200)),
                    "atomic-number": i.to_string(),
                },
            })
        })
        .collect();
    let body = serde_json::Value::Array(items).to_string();
    let request = format!(
        "POST {B}/entries HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Some(answer) = exchange(addr, request.as_bytes()) else {
        outcomes
            .lock()
            .unwrap()
            .bad
            .push(format!("{prefix}: connection dropped"));
        return 0;
    };
    let mut outcomes = outcomes.lock().unwrap();
    if disk.names_dir(&answer.text()) {
        outcomes
            .bad
            .push(format!("{prefix}: a path in {}", answer.text()));
    }
    match (answer.status, answer.error_code().as_deref()) {
        (200, _) => {
            let receipt = answer.json().unwrap();
            let entries = receipt["entries"].as_array().unwrap();
            assert_eq!(entries.len(), count, "{receipt}");
            for (i, entry) in entries.iter().enumerate() {
                outcomes.acks.push(Ack {
                    number: number(&entry["entry-number"]),
                    key: format!("{prefix}i{i}"),
                    item_hash: entry["item-hash"].as_str().unwrap().to_owned(),
                });
            }
            outcomes
                .checkpoints
                .push(receipt["checkpoint"].as_str().unwrap().to_owned());
        }
        (507, Some(code @ "disk-full")) | (503, Some(code @ ("disk-full" | "disk-error"))) => {
            if answer.status == 503 && !answer.head.contains("\r\nretry-after:") {
                outcomes
                    .bad
                    .push(format!("{prefix}: 503 {code} without Retry-After"));
            }
            *outcomes
                .refusals
                .entry((answer.status, code.to_owned()))
                .or_default() += 1;
            let message = answer.json().unwrap()["error"]["message"].to_string();
            if outcomes.messages.len() < 8 && !outcomes.messages.contains(&message) {
                outcomes.messages.push(message);
            }
        }
        (status, _) => outcomes
            .bad
            .push(format!("{prefix}: {status} {}", answer.text())),
    }
    answer.status
}

/// What readers and `/readyz` saw while writers ran.
#[derive(Default)]
struct Watch {
    /// Reads that were not a 200.
    bad_reads: Vec<String>,
    /// Checkpoints read from `B/log/checkpoint`.
    checkpoints: Vec<String>,
    /// `/readyz` answers 503 naming the register `disk-full` or
    /// `writes-failing`, and other answers that broke the contract.
    not_ready: usize,
    ready: usize,
    bad_readyz: Vec<String>,
}

/// Reads a record and the checkpoint, and asks `/readyz`, until `stop`.
fn watch(addr: &str, disk: &SmallDisk, stop: &AtomicBool, watch: &Mutex<Watch>) {
    while !stop.load(Ordering::SeqCst) {
        for path in [format!("{B}/records/Fe"), format!("{B}/log/checkpoint")] {
            match get_answer(addr, &path) {
                Some(answer) if answer.status == 200 => {
                    if path.ends_with("checkpoint") {
                        watch.lock().unwrap().checkpoints.push(answer.text());
                    }
                }
                Some(answer) => watch.lock().unwrap().bad_reads.push(format!(
                    "{path}: {} {}",
                    answer.status,
                    answer.text()
                )),
                None => watch
                    .lock()
                    .unwrap()
                    .bad_reads
                    .push(format!("{path}: no answer")),
            }
        }
        readyz(addr, disk, &mut watch.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asks `/readyz` once and files the answer; returns whether it was 200.
fn readyz(addr: &str, disk: &SmallDisk, watch: &mut Watch) -> bool {
    let Some(answer) = get_answer(addr, "/readyz") else {
        watch.bad_readyz.push("no answer".into());
        return false;
    };
    let text = answer.text();
    if disk.names_dir(&text) {
        watch.bad_readyz.push(format!("a path in {text}"));
    }
    let Some(body) = answer.json() else {
        watch.bad_readyz.push(format!("{}: {text}", answer.status));
        return false;
    };
    match answer.status {
        200 if body["ready"] == true => {
            watch.ready += 1;
            true
        }
        503 if body["ready"] == false => {
            let problems = body["problems"].as_array().cloned().unwrap_or_default();
            let full = problems.iter().any(|problem| {
                problem["name"] == "element"
                    && matches!(
                        problem["state"].as_str(),
                        Some("disk-full" | "writes-failing")
                    )
                    && problem["reason"].is_string()
            });
            if full {
                watch.not_ready += 1;
            } else {
                watch.bad_readyz.push(format!("503: {text}"));
            }
            false
        }
        status => {
            watch.bad_readyz.push(format!("{status}: {text}"));
            false
        }
    }
}

/// Runs `WRITERS` writers posting batches of 100 to 200 entries (and
/// readers beside them) until `enough` refusals, then returns what they
/// saw. Fails if the disk does not fill within `bound`.
fn fill(
    server: &Server,
    disk: &SmallDisk,
    token: &str,
    phase: &str,
    enough: usize,
    bound: Duration,
) -> (Outcomes, Watch) {
    let outcomes = Mutex::new(Outcomes::default());
    let seen = Mutex::new(Watch::default());
    let stop = AtomicBool::new(false);
    let refused = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(&server.addr, disk, &stop, &seen));
        for writer in 0..WRITERS {
            let (outcomes, stop, refused) = (&outcomes, &stop, &refused);
            scope.spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (writer as u64 + 1);
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let count = 100 + (seed % 101) as usize;
                    let prefix = format!("{phase}w{writer}n{n}");
                    match post_batch(&server.addr, token, &prefix, count, disk, outcomes) {
                        200 => {}
                        0 => {
                            stop.store(true, Ordering::SeqCst);
                            break;
                        }
                        _ => {
                            if refused.fetch_add(1, Ordering::SeqCst) + 1 >= enough {
                                stop.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    if start.elapsed() > bound {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
        // Writers end first (the scope joins them); then the watcher.
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        watcher.join().unwrap();
    });
    let outcomes = outcomes.into_inner().unwrap();
    let seen = seen.into_inner().unwrap();
    eprintln!(
        "{phase}: {} entries acknowledged in {} receipts, refusals {:?}, readyz 200 x{} 503 x{}, \
         in {:?}",
        outcomes.acks.len(),
        outcomes.checkpoints.len(),
        outcomes.refusals,
        seen.ready,
        seen.not_ready,
        start.elapsed()
    );
    eprintln!("{phase}: refused with {:#?}", outcomes.messages);
    assert!(
        outcomes.refused() >= enough,
        "{phase}: the disk did not fill in {bound:?}: {} refusals, {} entries acknowledged",
        outcomes.refused(),
        outcomes.acks.len()
    );
    (outcomes, seen)
}

fn token(disk: &SmallDisk) -> String {
    let output = disk
        .regis(&["token", "--register", "element"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    token.lines().last().unwrap().to_owned()
}

/// The register's origin and verifier key.
fn verifier(addr: &str) -> (String, Verifier) {
    let metadata = get(addr, &format!("{B}/register"));
    let origin = metadata["log-origin"].as_str().unwrap().to_owned();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    (origin, verifier)
}

/// Verifies each checkpoint text and adds it to `checkpoints`; fails on
/// two roots for one size (a fork).
fn collect_checkpoints<'a>(
    addr: &str,
    texts: impl IntoIterator<Item = &'a String>,
    checkpoints: &mut BTreeMap<u64, [u8; 32]>,
) {
    let (origin, verifier) = verifier(addr);
    let none = Verifiers::new([]).unwrap();
    for text in texts {
        let signed = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        signed.verify(&origin, &verifier, &none).unwrap();
        let (size, root) = (signed.checkpoint().size(), *signed.checkpoint().root_hash());
        let previous = checkpoints.insert(size, root);
        assert!(
            previous.is_none_or(|p| p == root),
            "a fork: two roots at size {size}"
        );
    }
}

/// Checks the server against everything acknowledged: each entry at its
/// number with its key and item hash, and the current checkpoint
/// consistent with every checkpoint handed out.
fn check_acknowledged(addr: &str, acks: &[Ack], checkpoints: &BTreeMap<u64, [u8; 32]>) {
    let (origin, verifier) = verifier(addr);
    let none = Verifiers::new([]).unwrap();
    let text = get_text(addr, &format!("{B}/log/checkpoint"));
    let current = SignedCheckpoint::parse(text.as_bytes()).unwrap();
    current.verify(&origin, &verifier, &none).unwrap();
    let (size, root) = (
        current.checkpoint().size(),
        *current.checkpoint().root_hash(),
    );
    let mut stored = BTreeMap::new();
    let mut start = 1;
    while start <= size {
        let page = get(addr, &format!("{B}/entries?start={start}&limit=5000"));
        let page = page.as_array().unwrap();
        assert!(!page.is_empty(), "no entries from {start} of {size}");
        for entry in page {
            let item_hash = entry["item-hash"][0].as_str().unwrap().to_owned();
            let key = entry["key"].as_str().unwrap().to_owned();
            stored.insert(number(&entry["entry-number"]), (key, item_hash));
        }
        start += page.len() as u64;
    }
    for ack in acks {
        assert!(ack.number <= size, "entry {} lost: size {size}", ack.number);
        let (key, item_hash) = &stored[&ack.number];
        assert_eq!(
            (key, item_hash),
            (&ack.key, &ack.item_hash),
            "entry {}",
            ack.number
        );
    }
    for (&old, old_root) in checkpoints {
        assert!(old <= size, "checkpoint {old} past the size {size}");
        let proof = get(
            addr,
            &format!("{B}/proof/consistency/{old}/{size}/merkle:sha-256"),
        );
        let nodes: Vec<[u8; 32]> = proof["merkle-consistency-nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| regis_model::parse_hash(h.as_str().unwrap()).unwrap())
            .collect();
        verify_consistency(old, size, &nodes, old_root, &root)
            .unwrap_or_else(|e| panic!("{old} -> {size}: {e}"));
    }
}

fn fsck(disk: &SmallDisk) {
    let output = disk.regis(&["fsck"]).output().unwrap();
    if !output.status.success() {
        let df = disk.command("df").arg(&disk.dir).output().unwrap();
        let ls = disk
            .command("ls")
            .arg("-lsR")
            .arg(&disk.dir)
            .output()
            .unwrap();
        panic!(
            "fsck: {}{}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&df.stdout),
            String::from_utf8_lossy(&ls.stdout)
        );
    }
}

/// Polls `what` every 200 ms for up to 60 s; fails with `failing` then.
fn eventually(failing: &str, mut what: impl FnMut() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{failing} after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_full_disk_loses_nothing_acknowledged_and_writes_resume_once_room_is_made() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let disk = SmallDisk::mount(24);
    // No reserve and no share per register: the store meets ENOSPC.
    let config = disk.config(
        "no-reserve.toml",
        "reserve-free-percent = 0\nmax-register-percent = 100",
    );
    let server = Server::start(&disk, &config);
    let token = token(&disk);
    let addr = server.addr.clone();
    let mut ready = Watch::default();
    assert!(readyz(&addr, &disk, &mut ready), "{:?}", ready.bad_readyz);

    let (outcomes, seen) = fill(
        &server,
        &disk,
        &token,
        "full",
        3 * WRITERS,
        Duration::from_secs(40),
    );
    let outcomes = Mutex::new(outcomes);
    {
        let outcomes = outcomes.lock().unwrap();
        assert!(outcomes.bad.is_empty(), "{:#?}", outcomes.bad);
        assert!(!outcomes.acks.is_empty(), "nothing acknowledged");
    }
    assert!(seen.bad_reads.is_empty(), "{:#?}", seen.bad_reads);
    assert!(seen.bad_readyz.is_empty(), "{:#?}", seen.bad_readyz);
    let mut watch = seen;
    // The disk is still full: /readyz must say so (or have said so). A
    // miss is reported at the end, once the rest is checked.
    let mut violations = Vec::new();
    let start = Instant::now();
    while watch.not_ready == 0 && start.elapsed() < Duration::from_secs(10) {
        readyz(&addr, &disk, &mut watch);
        std::thread::sleep(Duration::from_millis(200));
    }
    if watch.not_ready == 0 {
        violations.push(format!(
            "/readyz answered 200 {} times and never 503 while the disk was full",
            watch.ready
        ));
    }
    assert!(watch.bad_readyz.is_empty(), "{:#?}", watch.bad_readyz);

    // Room made: writes resume without a restart, and /readyz recovers.
    disk.resize(64);
    let mut tries = 0;
    eventually("writes did not resume once the disk grew", || {
        tries += 1;
        post_batch(
            &addr,
            &token,
            &format!("room{tries}"),
            100,
            &disk,
            &outcomes,
        ) == 200
    });
    eventually("/readyz stayed 503 once the disk grew", || {
        readyz(&addr, &disk, &mut watch)
    });
    assert!(watch.bad_readyz.is_empty(), "{:#?}", watch.bad_readyz);
    let outcomes = outcomes.into_inner().unwrap();
    assert!(outcomes.bad.is_empty(), "{:#?}", outcomes.bad);
    let log = server.log();
    eprintln!(
        "resumed after {tries} tries; {} server log lines say the disk was full",
        log.iter().filter(|line| line.contains("disk full")).count()
    );

    // kill -9, restart: nothing acknowledged lost, no fork.
    server.stop("-KILL");
    let server = Server::start(&disk, &config);
    let mut checkpoints = BTreeMap::new();
    collect_checkpoints(
        &server.addr,
        outcomes.checkpoints.iter().chain(&watch.checkpoints),
        &mut checkpoints,
    );
    check_acknowledged(&server.addr, &outcomes.acks, &checkpoints);
    server.stop("-TERM");
    fsck(&disk);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn with_a_reserve_writes_are_refused_before_the_disk_is_full() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Larger than the reserve's fixed headroom for merges (48 MiB).
    let disk = SmallDisk::mount(96);
    let config = disk.config(
        "reserve.toml",
        "reserve-free-percent = 5\nmax-register-percent = 100",
    );
    let server = Server::start(&disk, &config);
    let token = token(&disk);
    let (outcomes, seen) = fill(
        &server,
        &disk,
        &token,
        "reserve",
        3 * WRITERS,
        Duration::from_secs(40),
    );
    assert!(outcomes.bad.is_empty(), "{:#?}", outcomes.bad);
    assert!(seen.bad_reads.is_empty(), "{:#?}", seen.bad_reads);
    assert!(seen.bad_readyz.is_empty(), "{:#?}", seen.bad_readyz);
    assert!(!outcomes.acks.is_empty(), "nothing acknowledged");
    let failed: Vec<_> = server
        .log()
        .into_iter()
        .filter(|line| {
            ["No space left", "os error 28", "disk full", "disk error"]
                .iter()
                .any(|sign| line.contains(sign))
        })
        .collect();
    let mut checkpoints = BTreeMap::new();
    collect_checkpoints(
        &server.addr,
        outcomes.checkpoints.iter().chain(&seen.checkpoints),
        &mut checkpoints,
    );
    check_acknowledged(&server.addr, &outcomes.acks, &checkpoints);
    server.stop("-TERM");
    fsck(&disk);
    // Every refusal is the reserve's 507, none a write that failed.
    assert!(
        outcomes
            .refusals
            .keys()
            .all(|(status, code)| *status == 507 && code == "disk-full"),
        "{:?}",
        outcomes.refusals
    );
    assert!(
        failed.is_empty(),
        "the store met a full disk despite the reserve ({} times): {:#?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}
