//! What the tests share: logs named and signed as Regis signs a register's
//! two logs (or as another C2SP log does), a witness data directory
//! trusting them, a witness served on loopback, and a plain HTTP client.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use regis_merkle::{Edge, Hash, MemoryHashes, consistency_proof, leaf_hash};
use regis_note::{
    AddCheckpoint, Checkpoint, KeyName, NoteSigner, SignedCheckpoint, Verifier, Verifiers,
};
use regis_witness::{Limits, Options, Witness};

pub const HOST: &str = "witness.test";
pub const WITNESS_NAME: &str = "witness.test/w1";

/// One log: leaves in memory, checkpoints signed by one Ed25519 key.
pub struct Log {
    pub origin: String,
    pub signer: NoteSigner,
    hashes: MemoryHashes,
}

impl Log {
    /// The log `origin` with `size` leaves (`entry <tag> <i>`), signed by
    /// the key of `seed` named by the origin, as Regis names its keys.
    pub fn new(origin: &str, seed: [u8; 32], tag: &str, size: u64) -> Self {
        Self::with_key_name(origin, origin, seed, tag, size)
    }

    /// The same, with the key named `key_name` (Go's checksum database:
    /// origin `go.sum database tree`, key `sum.golang.org`).
    pub fn with_key_name(
        origin: &str,
        key_name: &str,
        seed: [u8; 32],
        tag: &str,
        size: u64,
    ) -> Self {
        let leaves = (0..size).map(|i| leaf_hash(format!("entry {tag} {i}").as_bytes()));
        Log {
            origin: origin.to_owned(),
            signer: NoteSigner::from_seed(KeyName::new(key_name).unwrap(), &seed),
            hashes: MemoryHashes::from_leaf_hashes(leaves),
        }
    }

    pub fn key(&self) -> Verifier {
        self.signer.verifier()
    }

    pub fn root(&self, size: u64) -> Hash {
        Edge::from_reader(&self.hashes, size).unwrap().root()
    }

    /// The signed checkpoint of the first `size` leaves.
    pub fn checkpoint(&self, size: u64) -> SignedCheckpoint {
        let checkpoint = Checkpoint::new(self.origin.clone(), size, self.root(size)).unwrap();
        SignedCheckpoint::sign(checkpoint, &self.signer)
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        let edge = Edge::from_reader(&self.hashes, new).unwrap();
        consistency_proof(&self.hashes, &edge, old).unwrap()
    }

    /// An add-checkpoint body: `old`, the proof from it to `new`, and the
    /// checkpoint of `new`.
    pub fn request(&self, old: u64, new: u64) -> Vec<u8> {
        AddCheckpoint {
            old_size: old,
            proof: if old == 0 {
                Vec::new()
            } else {
                self.proof(old, new)
            },
            checkpoint: self.checkpoint(new),
        }
        .to_bytes()
    }
}

/// A register's two logs as Regis signs them: one key, named by each
/// log's origin (`…/registers/NAME` and `…/registers/NAME/system`).
pub struct Register {
    pub user: Log,
    pub system: Log,
}

impl Register {
    pub fn new(name: &str, seed: [u8; 32], tag: &str, sizes: (u64, u64)) -> Self {
        let origin = format!("{HOST}/registers/{name}");
        Register {
            user: Log::new(&origin, seed, tag, sizes.0),
            system: Log::new(&format!("{origin}/system"), seed, tag, sizes.1),
        }
    }
}

/// A witness directory that trusts both logs of `register`; returns its
/// verifier key.
pub fn witness_dir(dir: &Path, register: &Register) -> Verifier {
    let verifier = regis_witness::init(dir, KeyName::new(WITNESS_NAME).unwrap()).unwrap();
    for log in [&register.user, &register.system] {
        assert!(regis_witness::add_log(dir, &log.origin, &log.key()).unwrap());
    }
    verifier
}

/// Checks that `line` (a 200 body) is one cosignature by `witness` of
/// `checkpoint`; returns its timestamp.
pub fn check_cosignature(
    body: &str,
    checkpoint: &SignedCheckpoint,
    log: &Log,
    witness: &Verifier,
) -> u64 {
    check_cosignature_of(body, checkpoint, &log.origin, &log.key(), witness)
}

/// The same for a checkpoint of `origin` signed by `key`.
pub fn check_cosignature_of(
    body: &str,
    checkpoint: &SignedCheckpoint,
    origin: &str,
    key: &Verifier,
    witness: &Verifier,
) -> u64 {
    let lines = regis_note::parse_cosignature_lines(body.as_bytes()).unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    let mut cosigned = checkpoint.clone();
    cosigned.add_signature(lines[0].clone()).unwrap();
    let witnesses = Verifiers::new([witness.clone()]).unwrap();
    let verified = cosigned.verify(origin, key, &witnesses).unwrap();
    assert_eq!(verified.len(), 1, "{body}");
    let timestamp = verified[0].timestamp().unwrap();
    assert!(timestamp > 0);
    timestamp
}

/// A witness served on loopback, stopped (and joined) when dropped.
pub struct Serving {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Serving {
    pub fn start(dir: &Path, options: Options, limits: Limits) -> Serving {
        let witness = Witness::open_with(dir, options).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            regis_witness::run(
                witness,
                "127.0.0.1:0".parse().unwrap(),
                limits,
                |addr| bound.send(addr).unwrap(),
                async {
                    let _ = stopped.await;
                },
            )
            .unwrap();
        });
        Serving {
            addr: addr.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Answer {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        exchange(self.addr, &request)
    }

    pub fn add_checkpoint(&self, body: &[u8]) -> Answer {
        self.post("/add-checkpoint", body)
    }

    pub fn get(&self, path: &str) -> Answer {
        exchange(
            self.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// The monitoring endpoint of `log`.
    pub fn checkpoint_of(&self, log: &Log) -> Answer {
        self.get(&format!(
            "/{}/checkpoint",
            regis_witness::origin_hash(&log.origin)
        ))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// An answer: status, content type and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// One HTTP/1.1 exchange on a new connection: exactly `request`, then the
/// whole answer (the server closes after it).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    read_answer(stream)
}

pub fn read_answer(mut stream: TcpStream) -> Answer {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(": ")?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// A fresh directory for a witness (`DIR/witness` in a temporary one).
pub fn temp_witness_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("witness");
    (temp, dir)
}
