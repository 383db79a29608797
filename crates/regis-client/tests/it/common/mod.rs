//! Real servers for the client's tests: a regis-server over registers
//! loaded from the shared fixtures, on an ephemeral loopback port; and a
//! lying server that proxies to it and rewrites what it likes.

#![allow(dead_code)]

use std::io::BufReader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use regis_model::RegisterName;
use regis_model::rsf::{Command, Policy, RsfReader};
use regis_note::{
    Checkpoint, Cosigner, KeyName, NoteSignature, NoteSigner, SignedCheckpoint, TlogProof,
    Verifier, WitnessPolicy,
};
use regis_server::{App, Limits};
use regis_store::{Log, RedbBackend, Registry, Request, Sequencer, SequencerConfig, system_clock};

pub const HOST: &str = "regis.test";

/// A runtime thread serving until dropped.
struct Running {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start<F>(
        serve: impl FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> F
        + Send
        + 'static,
        after: impl FnOnce() + Send + 'static,
    ) -> Running
    where
        F: std::future::Future<Output = ()>,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, shutdown_rx).await;
            });
            drop(runtime);
            after();
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Running {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the store holds for a register, read before serving it.
pub struct Loaded {
    /// The user log's verifier key, from the register's own signer.
    pub key: Verifier,
    /// Every user record: (key, entry number, item hash).
    pub records: Vec<(String, u64, [u8; 32])>,
    /// Checkpoints signed along the way, one per load step.
    pub checkpoints: Vec<String>,
}

/// A regis-server over one register.
pub struct Server {
    /// The server's state: its registers' stores and sequencers. Dropped
    /// before `running`, whose shutdown waits for the sequencers' last
    /// handles to go.
    pub app: Arc<App<RedbBackend>>,
    running: Running,
    pub dir: tempfile::TempDir,
    pub name: String,
    pub loaded: Loaded,
}

/// RSF commands of a fixture file, or why it is not RSF.
pub fn try_rsf_commands(path: &std::path::Path) -> Result<Vec<(u64, Command)>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    RsfReader::new(BufReader::new(&bytes[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// RSF commands of a fixture file.
pub fn rsf_commands(relative: &str) -> Vec<(u64, Command)> {
    let bytes = regis_fixtures::read(format!("registers/{relative}"));
    RsfReader::new(BufReader::new(&bytes[..]))
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Splits a fixture's commands into `parts` loads, each ending after a
/// user entry, so that each signs a checkpoint of a log the next one
/// extends. Dumps add every item first; each item is moved to just before
/// the first entry that uses it, so that no load holds an orphan item.
pub fn split_commands(commands: Vec<(u64, Command)>, parts: usize) -> Vec<Vec<(u64, Command)>> {
    let mut items = std::collections::HashMap::new();
    let mut ordered = Vec::new();
    for (line, command) in commands {
        match command {
            Command::AddItem(item) => {
                items.insert(item.hash(), (line, item));
            }
            Command::AppendEntry(entry) => {
                for hash in &entry.item_hashes {
                    if let Some((line, item)) = items.remove(hash) {
                        ordered.push((line, Command::AddItem(item)));
                    }
                }
                ordered.push((line, Command::AppendEntry(entry)));
            }
            other => ordered.push((line, other)),
        }
    }
    let users: Vec<usize> = ordered
        .iter()
        .enumerate()
        .filter(
            |(_, (_, c))| matches!(c, Command::AppendEntry(e) if e.log == regis_model::Log::User),
        )
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for part in (1..parts).rev() {
        let cut = users[users.len() * part / parts] + 1;
        out.push(ordered.split_off(cut));
    }
    out.push(ordered);
    out.reverse();
    out
}

impl Server {
    /// Serves register `name`, loaded with `steps` one after another.
    pub fn start(name: &str, steps: Vec<Vec<(u64, Command)>>) -> Server {
        Self::try_start(name, steps).unwrap()
    }

    /// As [`Self::start`], or why the steps do not load.
    pub fn try_start(name: &str, steps: Vec<Vec<(u64, Command)>>) -> Result<Server, String> {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path(), HOST);
        let register_name = RegisterName::new(name).map_err(|e| e.to_string())?;
        let register = registry.create::<RedbBackend>(&register_name).unwrap();
        let key = register.signers.verifier(Log::User);
        let store = register.store.clone();
        let sequencer = Sequencer::spawn(
            name,
            register.store,
            register.writer,
            register.signers,
            SequencerConfig::default(),
            system_clock(),
        )
        .unwrap();
        let mut checkpoints = Vec::new();
        for commands in steps {
            let receipt = sequencer.handle().run(Request::Load {
                commands,
                policy: Policy::IMPORT,
            });
            match receipt {
                Ok(receipt) => checkpoints.push(receipt.checkpoints.user.text.clone()),
                Err(error) => {
                    sequencer.join();
                    return Err(error.to_string());
                }
            }
        }
        sequencer.join();
        let records = store
            .snapshot()
            .unwrap()
            .records(Log::User, 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.entry_number, r.item_hash))
            .collect();
        // The server opens the database itself.
        drop(store);
        let opened = App::<RedbBackend>::open(&registry, Limits::default()).unwrap();
        assert!(opened.app.unavailable.is_empty());
        let app = Arc::clone(&opened.app);
        let served = Arc::clone(&opened.app);
        let running = Running::start(
            move |listener, shutdown| async move {
                regis_server::serve(listener, app, async {
                    let _ = shutdown.await;
                })
                .await
                .unwrap();
            },
            move || opened.shutdown(),
        );
        Ok(Server {
            running,
            app: served,
            dir,
            name: name.to_owned(),
            loaded: Loaded {
                key,
                records,
                checkpoints,
            },
        })
    }

    /// Appends `commands` through the running server's sequencer (as a
    /// write request would); returns the new user checkpoint's text.
    pub fn append(&self, commands: Vec<(u64, Command)>) -> String {
        let register = self.app.register(&self.name).unwrap();
        let receipt = register
            .sequencer()
            .unwrap()
            .run(Request::Load {
                commands,
                policy: Policy::IMPORT,
            })
            .unwrap();
        receipt.checkpoints.user.text.clone()
    }

    /// The register's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/registers/{}", self.running.addr, self.name)
    }

    /// The register's own signing key, to forge checkpoints a client
    /// cannot tell from real ones (a compromised or forking log).
    pub fn signer(&self) -> NoteSigner {
        let pem = std::fs::read_to_string(
            self.dir
                .path()
                .join("registers")
                .join(&self.name)
                .join(regis_store::KEY_FILE),
        )
        .unwrap();
        NoteSigner::from_pkcs8_pem(self.loaded.key.name().clone(), &pem).unwrap()
    }
}

/// What a lying server answers for a path under the register (such as
/// `log/checkpoint`), given the honest answer (`None`: not found);
/// `None` answers 404.
pub type Lie = dyn Fn(&str, Option<Vec<u8>>) -> Option<Vec<u8>> + Send + Sync;

/// A server that proxies one register's paths to an honest upstream and
/// rewrites the answers.
pub struct Liar {
    running: Running,
    name: String,
}

struct LiarState {
    upstream: String,
    prefix: String,
    lie: Box<Lie>,
}

async fn lie(State(state): State<Arc<LiarState>>, uri: Uri) -> Response {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let upstream = format!("{}{path}", state.upstream);
    let honest = tokio::task::spawn_blocking(move || {
        let mut response = ureq::get(&upstream).call().ok()?;
        response
            .body_mut()
            .with_config()
            .limit(1 << 26)
            .read_to_vec()
            .ok()
    })
    .await
    .unwrap();
    let relative = path.strip_prefix(&state.prefix).unwrap_or(&path);
    match (state.lie)(relative, honest) {
        Some(body) => Response::new(Body::from(body)),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap(),
    }
}

impl Liar {
    /// Proxies `server`, answering what `lie` says.
    pub fn start(
        server: &Server,
        lie_about: impl Fn(&str, Option<Vec<u8>>) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Liar {
        let state = Arc::new(LiarState {
            upstream: format!("http://{}", server.running.addr),
            prefix: format!("/registers/{}/", server.name),
            lie: Box::new(lie_about),
        });
        let router = axum::Router::new().fallback(lie).with_state(state);
        let running = Running::start(
            move |listener, shutdown| async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = shutdown.await;
                    })
                    .await
                    .unwrap();
            },
            || {},
        );
        Liar {
            running,
            name: server.name.clone(),
        }
    }

    /// The register's base URL on the liar.
    pub fn url(&self) -> String {
        format!("http://{}/registers/{}", self.running.addr, self.name)
    }
}

/// A signer with the same name as `key` but another key pair.
pub fn impostor(key: &Verifier) -> NoteSigner {
    NoteSigner::from_seed(KeyName::new(key.name().as_str()).unwrap(), &[7; 32])
}

/// A witness with a real cosignature/v1 key, named `witness-N.test`.
pub fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(KeyName::new(format!("witness-{n}.test")).unwrap(), &[n; 32])
}

/// The policy `text`, with each `{N}` replaced by witness N's verifier key.
pub fn policy(text: &str) -> WitnessPolicy {
    let mut text = text.to_owned();
    for n in 1..=9 {
        text = text.replace(&format!("{{{n}}}"), &witness(n).verifier().to_string());
    }
    WitnessPolicy::parse(text.as_bytes()).unwrap()
}

/// POSIX seconds now: the time a witness cosigns at.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `witness`'s cosignature line on `checkpoint` at `time`; `forged`, with
/// one bit of its Ed25519 signature flipped.
pub fn cosignature(
    witness: &Cosigner,
    checkpoint: &Checkpoint,
    time: u64,
    forged: bool,
) -> NoteSignature {
    let line = NoteSignature::from(witness.cosign(checkpoint, time).unwrap());
    if !forged {
        return line;
    }
    let mut signature = line.signature().to_vec();
    signature[20] ^= 1;
    NoteSignature::new(line.name().clone(), line.key_id().unwrap(), &signature)
}

/// `signed` with the lines `cosign` makes for its checkpoint appended.
pub fn add_cosignatures(
    signed: &SignedCheckpoint,
    cosign: &dyn Fn(&Checkpoint) -> Vec<NoteSignature>,
) -> SignedCheckpoint {
    let mut signed = signed.clone();
    for line in cosign(signed.checkpoint()) {
        signed.add_signature(line).unwrap();
    }
    signed
}

/// What a cosigning server adds to checkpoints: the lines for a checkpoint.
pub type Cosign = dyn Fn(&Checkpoint) -> Vec<NoteSignature> + Send + Sync;

/// A server of `server`'s register whose checkpoints carry the lines
/// `cosign` makes, appended to the log's signature: both logs'
/// checkpoints, and those in record proofs (`proofs`; tlog-proof and
/// JSON). What a log whose witnesses cosigned serves.
pub fn cosigning(server: &Server, proofs: bool, cosign: Box<Cosign>) -> Liar {
    Liar::start(server, move |path, honest| {
        let honest = honest?;
        let path = path.split('?').next().unwrap_or_default();
        let add = |signed: &SignedCheckpoint| add_cosignatures(signed, &*cosign);
        if path.ends_with("log/checkpoint") {
            let signed = SignedCheckpoint::parse(&honest).unwrap();
            return Some(add(&signed).to_string().into_bytes());
        }
        if !proofs {
            return Some(honest);
        }
        if path.ends_with("/proof.tlog-proof") {
            let proof = TlogProof::parse(&honest).unwrap();
            let cosigned = TlogProof::new(
                proof.extra().map(<[u8]>::to_vec),
                proof.index(),
                proof.path().to_vec(),
                add(proof.checkpoint()),
            );
            return Some(cosigned.to_string().into_bytes());
        }
        if path.ends_with("/proof") || path.ends_with("/proof.json") {
            let mut proof: serde_json::Value = serde_json::from_slice(&honest).unwrap();
            let text = proof["checkpoint"].as_str().unwrap();
            let signed = SignedCheckpoint::parse(text.as_bytes()).unwrap();
            proof["checkpoint"] = add(&signed).to_string().into();
            return Some(proof.to_string().into_bytes());
        }
        Some(honest)
    })
}
