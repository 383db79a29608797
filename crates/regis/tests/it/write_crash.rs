//! The server killed with SIGKILL while 32 writers post entries to it, then
//! restarted, several rounds per backend: every acknowledged entry is
//! there at its number with its item, the new checkpoint verifies and is
//! consistent with every checkpoint any writer was given, and `regis fsck`
//! is clean. A last round stops the server with SIGTERM instead: every
//! write then gets an answer (a receipt, or 503 while it drains), never a
//! lost one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::http::{Answer, exchange, get, get_text};
use regis_merkle::verify_consistency;
use regis_note::{SignedCheckpoint, Verifier, Verifiers};

const WRITERS: usize = 32;
const B: &str = "/registers/element";

/// `regis <args> --data DATA --backend BACKEND`.
fn regis(backend: &str, data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regis"));
    command
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--backend", backend]);
    command
}

/// A running `regis serve` and the address it printed.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(backend: &str, data: &Path) -> Server {
        let mut child = regis(
            backend,
            data,
            &["serve", "--demo", "--listen", "127.0.0.1:0"],
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server printed no address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("regis: serving ") {
                let url = rest.rsplit(" on ").next().unwrap();
                break url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn kill(mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

/// What a writer was told: the entry's number, key and item hash, and the
/// checkpoint covering it.
struct Ack {
    number: u64,
    key: String,
    item_hash: String,
    checkpoint: String,
}

/// Posts single entries from `WRITERS` threads until `stop` is set or the
/// server goes away. Returns the acknowledgements and the statuses of
/// every answer that was not a receipt.
fn write_until_stopped(
    addr: &str,
    token: &str,
    round: u32,
    stop: &AtomicBool,
) -> (Vec<Ack>, Vec<u16>) {
    let sent = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let sent = &sent;
                scope.spawn(move || {
                    let (mut acks, mut others) = (Vec::new(), Vec::new());
                    for n in 0.. {
                        if stop.load(Ordering::SeqCst) && n > 0 {
                            break;
                        }
                        let key = format!("r{round}w{writer}n{n}");
                        let body = serde_json::json!([{
                            "key": key,
                            "item": {"element": key, "name": format!("Writer {writer}"), "atomic-number": n.to_string()},
                        }])
                        .to_string();
                        let request = format!(
                            "POST {B}/entries HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        sent.fetch_add(1, Ordering::Relaxed);
                        match exchange(addr, request.as_bytes()) {
                            Some(Answer {
                                status: 200, body, ..
                            }) => {
                                let receipt: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap();
                                let entry = &receipt["entries"][0];
                                acks.push(Ack {
                                    number: entry["entry-number"].as_u64().unwrap(),
                                    key: key.clone(),
                                    item_hash: entry["item-hash"].as_str().unwrap().to_owned(),
                                    checkpoint: receipt["checkpoint"].as_str().unwrap().to_owned(),
                                });
                            }
                            Some(Answer { status, .. }) => others.push(status),
                            None => break,
                        }
                    }
                    (acks, others)
                })
            })
            .collect();
        let mut acks = Vec::new();
        let mut others = Vec::new();
        for worker in workers {
            let (a, o) = worker.join().unwrap();
            acks.extend(a);
            others.extend(o);
        }
        (acks, others)
    })
}

/// Checks the restarted server against everything acknowledged before.
fn check_acknowledged(addr: &str, acks: &[Ack], checkpoints: &BTreeMap<u64, [u8; 32]>) {
    let metadata = get(addr, &format!("{B}/register"));
    let origin = metadata["log-origin"].as_str().unwrap();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    let none = Verifiers::new([]).unwrap();
    let text = get_text(addr, &format!("{B}/log/checkpoint"));
    let current = SignedCheckpoint::parse(text.as_bytes()).unwrap();
    current.verify(origin, &verifier, &none).unwrap();
    let (size, root) = (
        current.checkpoint().size(),
        *current.checkpoint().root_hash(),
    );
    for ack in acks {
        assert!(ack.number <= size, "entry {} lost: size {size}", ack.number);
        let entry = get(addr, &format!("{B}/entries/{}", ack.number));
        assert_eq!(entry[0]["key"], ack.key.as_str(), "entry {}", ack.number);
        assert_eq!(entry[0]["item-hash"][0], ack.item_hash.as_str());
    }
    for (&old, old_root) in checkpoints {
        assert!(old <= size);
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

/// Verifies each acknowledged checkpoint and adds it to `checkpoints`.
fn collect_checkpoints(addr: &str, acks: &[Ack], checkpoints: &mut BTreeMap<u64, [u8; 32]>) {
    let metadata = get(addr, &format!("{B}/register"));
    let origin = metadata["log-origin"].as_str().unwrap().to_owned();
    let verifier = Verifier::parse(metadata["log-public-key"].as_str().unwrap()).unwrap();
    let none = Verifiers::new([]).unwrap();
    for ack in acks {
        let signed = SignedCheckpoint::parse(ack.checkpoint.as_bytes()).unwrap();
        signed.verify(&origin, &verifier, &none).unwrap();
        let (size, root) = (signed.checkpoint().size(), *signed.checkpoint().root_hash());
        assert!(ack.number <= size);
        let previous = checkpoints.insert(size, root);
        assert!(previous.is_none_or(|p| p == root), "two roots at {size}");
    }
}

fn kill_server_under_writes(backend: &str, rounds: u32) {
    let data = tempfile::tempdir().unwrap();
    let mut checkpoints = BTreeMap::new();
    let mut delay = 0x2545_f491_4f6c_dd1du64;
    let mut total_acks = 0;
    for round in 0..=rounds {
        let server = Server::start(backend, data.path());
        let addr = server.addr.clone();
        let token = regis(backend, data.path(), &["token", "--register", "element"])
            .output()
            .unwrap();
        assert!(token.status.success());
        let token = String::from_utf8(token.stdout).unwrap();
        let token = token.lines().last().unwrap().to_owned();
        let stop = AtomicBool::new(false);
        let graceful = round == rounds;
        delay ^= delay << 13;
        delay ^= delay >> 7;
        delay ^= delay << 17;
        let wait = Duration::from_millis(300 + delay % 900);
        let (acks, others) = std::thread::scope(|scope| {
            let writers = scope.spawn(|| write_until_stopped(&addr, &token, round, &stop));
            std::thread::sleep(wait);
            server.kill(if graceful { "-TERM" } else { "-KILL" });
            stop.store(true, Ordering::SeqCst);
            writers.join().unwrap()
        });
        assert!(
            !acks.is_empty(),
            "round {round}: no write was acknowledged in {wait:?}"
        );
        // The only answer besides a receipt is "busy / stopping, retry".
        assert!(
            others.iter().all(|status| *status == 503),
            "round {round}: {others:?}"
        );
        eprintln!(
            "{backend} round {round}: {} acknowledged, {} answered 503, {} after {wait:?}",
            acks.len(),
            others.len(),
            if graceful { "SIGTERM" } else { "SIGKILL" }
        );
        total_acks += acks.len();
        let server = Server::start(backend, data.path());
        collect_checkpoints(&server.addr, &acks, &mut checkpoints);
        check_acknowledged(&server.addr, &acks, &checkpoints);
        server.kill("-TERM");
        let fsck = regis(backend, data.path(), &["fsck"]).output().unwrap();
        assert!(
            fsck.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
    }
    assert!(total_acks > 100, "only {total_acks} writes acknowledged");
}

#[test]
fn kill_9_under_concurrent_writes_loses_nothing_acknowledged() {
    kill_server_under_writes("redb", 4);
}

#[cfg(feature = "sled")]
#[test]
fn kill_9_under_concurrent_writes_loses_nothing_acknowledged_with_sled() {
    kill_server_under_writes("sled", 3);
}
