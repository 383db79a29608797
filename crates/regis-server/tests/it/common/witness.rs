//! Witnesses for tests: C2SP tlog-witness's `add-checkpoint` over real
//! HTTP on a loopback port, checked with regis-note's
//! `check_add_checkpoint` and cosigned with a real key, with switches for
//! faults: down, hanging, 429, 409 with a size, 422, a cosignature that
//! does not verify, a body that never ends or never finishes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use regis_model::{PerLog, RegisterName};
use regis_note::{
    AddCheckpoint, AddCheckpointRefusal, Cosigner, NoteSignature, Verifier, WitnessedTree,
    check_add_checkpoint, format_cosignature_lines, format_size_body,
};
use regis_store::{RedbBackend, Registry};

/// What a test witness does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Checks and cosigns, as tlog-witness says.
    None,
    /// Closes each connection at once.
    Down,
    /// Never answers.
    Hang,
    /// 429.
    TooManyRequests,
    /// 422.
    Unprocessable,
    /// 409 `text/x.tlog.size` with this size, whatever was asked.
    ConflictAt(u64),
    /// Checks and records as usual, but its cosignature does not verify.
    BadCosignature,
    /// 200, and a body that never ends.
    EndlessBody,
    /// 200, a first line, then nothing more, never finished.
    StalledBody,
}

/// One add-checkpoint request as a witness saw it: the log, the old size,
/// the checkpoint's size, and the status answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub origin: String,
    pub old: u64,
    pub size: u64,
    pub status: u16,
}

/// The state of a test witness, shared with its handlers.
struct WitnessState {
    cosigner: Cosigner,
    /// The logs it trusts: origin → keys.
    logs: Mutex<HashMap<String, Vec<Verifier>>>,
    /// The tree it last cosigned, per origin.
    trees: Mutex<HashMap<String, WitnessedTree>>,
    fault: Mutex<Fault>,
    /// add-checkpoint requests handled.
    requests: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// A witness on a loopback port, on a runtime thread of its own.
pub struct TestWitness {
    /// Its name in the tests' policies.
    pub name: String,
    addr: SocketAddr,
    state: Arc<WitnessState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestWitness {
    /// A witness called `name` in the tests' policies, cosigning with
    /// `cosigner`.
    pub fn start(name: &str, cosigner: Cosigner) -> TestWitness {
        let state = Arc::new(WitnessState {
            cosigner,
            logs: Mutex::new(HashMap::new()),
            trees: Mutex::new(HashMap::new()),
            fault: Mutex::new(Fault::None),
            requests: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .with_state(Arc::clone(&state));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let accepting = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => accepted.unwrap(),
                        _ = &mut shutdown_rx => break,
                    };
                    if *accepting.fault.lock().unwrap() == Fault::Down {
                        drop(stream);
                        continue;
                    }
                    let service = TowerToHyperService::new(router.clone());
                    // One request per connection, so that `Down` refuses
                    // every request from when it is set.
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            // Hanging handlers and endless bodies are dropped with it.
            runtime.shutdown_background();
        });
        TestWitness {
            name: name.to_owned(),
            addr: addr_rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Its policy line.
    pub fn policy_line(&self) -> String {
        format!(
            "witness {} {} http://{}\n",
            self.name,
            self.state.cosigner.verifier(),
            self.addr
        )
    }

    pub fn trust(&self, origin: &str, key: Verifier) {
        self.state
            .logs
            .lock()
            .unwrap()
            .entry(origin.to_owned())
            .or_default()
            .push(key);
    }

    pub fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Forgets every tree it cosigned, as a witness restored from nothing.
    pub fn forget(&self) {
        self.state.trees.lock().unwrap().clear();
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// POSIX seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn size_answer(size: u64) -> Response {
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "text/x.tlog.size")],
        format_size_body(size),
    )
        .into_response()
}

/// `POST /add-checkpoint`: tlog-witness, with the fault switched on.
async fn add_checkpoint(State(witness): State<Arc<WitnessState>>, body: Bytes) -> Response {
    witness.requests.fetch_add(1, Ordering::SeqCst);
    let fault = *witness.fault.lock().unwrap();
    let request = match AddCheckpoint::parse(&body) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    let checkpoint = request.checkpoint.checkpoint().clone();
    let origin = checkpoint.origin().to_owned();
    let answer = match fault {
        Fault::None | Fault::BadCosignature | Fault::Down => {
            cosign(&witness, &request, fault == Fault::BadCosignature)
        }
        Fault::Hang => std::future::pending().await,
        Fault::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "slow down\n").into_response(),
        Fault::Unprocessable => (StatusCode::UNPROCESSABLE_ENTITY, "no\n").into_response(),
        Fault::ConflictAt(size) => size_answer(size),
        Fault::EndlessBody => {
            let line = Bytes::from(vec![b'x'; 4096]);
            let endless = futures_util::stream::repeat(line).map(Ok::<_, std::io::Error>);
            Response::new(Body::from_stream(endless))
        }
        Fault::StalledBody => {
            let first = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static("\u{2014} ".as_bytes()))
            });
            let stalled = first.chain(futures_util::stream::pending());
            Response::new(Body::from_stream(stalled))
        }
    };
    witness.seen.lock().unwrap().push(Seen {
        origin,
        old: request.old_size,
        size: checkpoint.size(),
        status: answer.status().as_u16(),
    });
    answer
}

/// The witness's checks; the new tree is recorded before the cosignature
/// is answered, which `bad` spoils.
fn cosign(witness: &WitnessState, request: &AddCheckpoint, bad: bool) -> Response {
    let checkpoint = request.checkpoint.checkpoint();
    let keys = witness
        .logs
        .lock()
        .unwrap()
        .get(checkpoint.origin())
        .cloned();
    let mut trees = witness.trees.lock().unwrap();
    match check_add_checkpoint(request, keys.as_deref(), trees.get(checkpoint.origin())) {
        Ok(tree) => {
            trees.insert(checkpoint.origin().to_owned(), tree);
            let cosignature = witness.cosigner.cosign(checkpoint, unix_now()).unwrap();
            let mut line = NoteSignature::from(cosignature);
            if bad {
                let mut payload = line.payload().to_vec();
                *payload.last_mut().unwrap() ^= 1;
                line =
                    NoteSignature::new(line.name().clone(), line.key_id().unwrap(), &payload[4..]);
            }
            (StatusCode::OK, format_cosignature_lines(&[line])).into_response()
        }
        Err(AddCheckpointRefusal::Conflict { latest }) => size_answer(latest),
        Err(refusal) => (
            StatusCode::from_u16(refusal.status()).unwrap(),
            format!("{refusal}\n"),
        )
            .into_response(),
    }
}

/// Makes each of `witnesses` trust both logs of register `name` of
/// `registry`; returns the logs' origins and verifier keys.
pub fn trusted_by(
    registry: &Registry,
    name: &str,
    witnesses: &[&TestWitness],
) -> PerLog<(String, Verifier)> {
    let register = registry
        .open::<RedbBackend>(&RegisterName::new(name).unwrap())
        .unwrap();
    let keys = PerLog::from_fn(|log| {
        (
            register.signers.origin(log).to_owned(),
            register.signers.verifier(log),
        )
    });
    for witness in witnesses {
        for (_, (origin, key)) in keys.iter() {
            witness.trust(origin, key.clone());
        }
    }
    keys
}

/// A policy line for each of `witnesses` (with its URL), then `rest`.
pub fn policy_with(witnesses: &[&TestWitness], rest: &str) -> String {
    let mut text = String::new();
    for witness in witnesses {
        text.push_str(&witness.policy_line());
    }
    text.push_str(rest);
    text
}
