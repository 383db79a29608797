//! The log's side of C2SP tlog-witness: a register with a witness policy
//! (C2SP tlog-policy) has a [`Witnessing`], a thread of its own that sends
//! the register's new checkpoints to the policy's witnesses, gathers their
//! cosignatures, and keeps durably each witness's last size and the newest
//! checkpoint of each log whose cosignatures meet the quorum, which is what
//! the server then serves ([`WitnessedState`]). `spec/witness.md`, "The
//! log's witnessing state" and "Rounds", says it byte by byte.
//!
//! - A round takes, for each log whose newest signed checkpoint is larger
//!   than its witnessed one, that checkpoint, and asks every witness with a
//!   URL that has not yet cosigned it, refused it, is backing off or is
//!   still answering an earlier request about the log, all at once:
//!   `POST <url>/add-checkpoint` with the witness's last known size and a
//!   consistency proof from the store. Rounds start at least
//!   `witness-interval-ms` apart, so any number of commits meanwhile make
//!   one round; a log with no new checkpoint makes none (an idle register
//!   sends nothing). Answers are taken as they come: a log's checkpoint is
//!   served as soon as its cosignatures meet the quorum.
//! - Answers: 200, each cosignature from the witness's key checked (a bad
//!   one is that witness's failure); 409 `text/x.tlog.size`, that size
//!   taken and the request sent again at once (once per checkpoint) when
//!   it is at most the checkpoint's; any other 4xx but 429 is reported and
//!   that witness is not asked again until a newer checkpoint; 429, 5xx, a
//!   timeout or a failed connection back that witness off, 1 s doubling to
//!   60 s.
//! - Each request is bounded: `witness-timeout-seconds` for the whole
//!   exchange, [`MAX_ANSWER_BYTES`] of answer. Requests run on blocking
//!   threads; the sequencer and the readers never wait for a witness.
//! - The state is written (temporary file, fsync, rename, directory fsync)
//!   before what it holds is served; a failed write is logged, the old
//!   state keeps being served, and the write is tried again (backing off).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regis_merkle::verify_consistency;
use regis_model::PerLog;
use regis_note::{
    AddCheckpoint, MAX_FUTURE_SKEW, NoteSignature, SIZE_CONTENT_TYPE, SignedCheckpoint, Verifier,
    Verifiers, WitnessPolicy, parse_cosignature_lines, parse_decimal, parse_size_body,
};
use regis_store::{DirBackend, Log, SignedTree, Store, write_atomically};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::ServerError;
use crate::metrics::{WitnessCounts, WitnessOutcome, WitnessingSizes};

/// A register's own policy, in its directory: it overrides the server's.
pub const POLICY_FILE: &str = "witness-policy";

/// The witnessing state, in the register's directory (`spec/witness.md`).
pub const STATE_FILE: &str = "witnessed";

/// The first line of [`STATE_FILE`].
const STATE_VERSION: &str = "regis-witnessed/1";

/// The most a state file may hold: 64 witnesses' sizes and two notes of at
/// most 100 signature lines are a few tens of KiB.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// The most of a witness's answer that is read. A cosignature line is about
/// 130 bytes; a witness that sends more, or never stops, fails.
pub const MAX_ANSWER_BYTES: u64 = 64 << 10;

/// The first back-off of a witness that failed, doubled at each failure
/// after it, up to [`MAX_BACK_OFF`].
pub const FIRST_BACK_OFF: Duration = Duration::from_secs(1);

/// The longest back-off.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(60);

/// How long a witnessed checkpoint may stand still while a newer one waits
/// before `/readyz` reports the register (`witnesses-behind`), unless
/// [`WitnessSettings::behind_after`] says otherwise.
pub const BEHIND_AFTER: Duration = Duration::from_secs(60);

/// A witness policy file, as read: its bytes (served as they are at
/// `B/witness-policy`) and what they say.
#[derive(Debug)]
pub struct PolicyFile {
    bytes: Vec<u8>,
    policy: WitnessPolicy,
}

impl PolicyFile {
    /// Reads and parses `path`; the error names the file and, for a policy
    /// that does not parse, the line.
    pub fn load(path: &Path) -> Result<PolicyFile, ServerError> {
        let refused = |error: String| ServerError::WitnessPolicy {
            path: path.to_owned(),
            error,
        };
        let bytes = std::fs::read(path).map_err(|error| refused(error.to_string()))?;
        PolicyFile::parse(bytes).map_err(refused)
    }

    /// Parses a policy: C2SP tlog-policy, and each witness URL `http://` or
    /// `https://` (the submission prefix).
    pub fn parse(bytes: Vec<u8>) -> Result<PolicyFile, String> {
        let policy = WitnessPolicy::parse(&bytes).map_err(|error| error.to_string())?;
        for witness in policy.witnesses() {
            if let Some(url) = &witness.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(format!(
                    "witness {}: its URL {url:?} is not http:// or https://",
                    witness.name
                ));
            }
        }
        Ok(PolicyFile { bytes, policy })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The policy.
    pub fn policy(&self) -> &WitnessPolicy {
        &self.policy
    }
}

/// How a server's registers are witnessed: the server's policy (a register
/// may have its own, [`POLICY_FILE`]), the pace of rounds and the bound on
/// each request.
#[derive(Clone, Debug)]
pub struct WitnessSettings {
    /// The policy of registers without their own; `None`: such registers
    /// are not witnessed.
    pub policy: Option<Arc<PolicyFile>>,
    /// The least time between the starts of two rounds of one register.
    pub interval: Duration,
    /// The longest one request to a witness may take, whole.
    pub timeout: Duration,
    /// How long a witnessed checkpoint may stand still while a newer one
    /// waits before `/readyz` reports it ([`BEHIND_AFTER`]).
    pub behind_after: Duration,
}

impl Default for WitnessSettings {
    fn default() -> Self {
        WitnessSettings {
            policy: None,
            interval: Duration::from_millis(1000),
            timeout: Duration::from_secs(10),
            behind_after: BEHIND_AFTER,
        }
    }
}

impl WitnessSettings {
    /// The policy of the register in `dir`: its own file if it has one
    /// (an error, naming the file and line, if that does not parse), else
    /// the server's.
    pub fn policy_for(&self, dir: &Path) -> Result<Option<Arc<PolicyFile>>, ServerError> {
        let own = dir.join(POLICY_FILE);
        match std::fs::symlink_metadata(&own) {
            Ok(_) => Ok(Some(Arc::new(PolicyFile::load(&own)?))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(self.policy.clone()),
            Err(error) => Err(ServerError::WitnessPolicy {
                path: own,
                error: error.to_string(),
            }),
        }
    }

    /// How long `?wait=witnessed` waits: three requests' time, so that a
    /// witness answering a 409 and then cosigning, or one timing out and
    /// another answering, still makes it.
    pub fn wait_limit(&self) -> Duration {
        self.timeout.saturating_mul(3)
    }
}

/// A log's identity: its origin and the key its checkpoints are signed with.
#[derive(Clone, Debug)]
pub struct LogKey {
    /// The origin (the checkpoints' first line).
    pub origin: String,
    /// The log's verifier key.
    pub verifier: Verifier,
}

/// What a register's witnessing has gathered, as the server reads it: the
/// policy, the witnessed checkpoints it serves, and each witness's
/// progress (for `/metrics` and `/readyz`).
#[derive(Debug)]
pub struct WitnessedState {
    policy: Arc<PolicyFile>,
    behind_after: Duration,
    served: watch::Sender<PerLog<Option<SignedTree>>>,
    progress: Mutex<Progress>,
}

/// Each witness's progress, and since when each log's witnessed checkpoint
/// has stood still behind a newer signed one.
#[derive(Debug, Default)]
struct Progress {
    witnesses: Vec<WitnessProgress>,
    stalled_since: PerLog<Option<Instant>>,
}

#[derive(Debug)]
struct WitnessProgress {
    name: String,
    logs: PerLog<LogProgress>,
}

#[derive(Clone, Debug, Default)]
struct LogProgress {
    /// Its last known size.
    size: u64,
    /// Why it last failed, until it next cosigns.
    last_error: Option<String>,
    /// Requests by outcome, indexed as [`WitnessOutcome::ALL`].
    outcomes: [u64; WitnessOutcome::ALL.len()],
}

/// Why a register's witnessed checkpoint is behind (`/readyz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The log.
    pub log: Log,
    /// The size of its witnessed checkpoint, if it has one.
    pub witnessed: Option<u64>,
    /// How long it has stood still while a newer checkpoint waited.
    pub waiting: Duration,
    /// Each witness that last failed on the log: its name and why.
    pub failing: Vec<(String, String)>,
}

impl WitnessedState {
    /// The policy.
    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }

    /// The newest witnessed checkpoint of `log`: the log's signature line
    /// first, then the cosignatures.
    pub fn checkpoint(&self, log: Log) -> Option<SignedTree> {
        self.served.borrow()[log].clone()
    }

    /// Changes to the witnessed checkpoints.
    pub fn subscribe(&self) -> watch::Receiver<PerLog<Option<SignedTree>>> {
        self.served.subscribe()
    }

    /// The first log whose witnessed checkpoint has stood still for longer
    /// than [`WitnessSettings::behind_after`] while a newer signed one
    /// waited, as of `now`.
    pub fn behind(&self, now: Instant) -> Option<Behind> {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let served = self.served.borrow();
        PerLog::<()>::LOGS.into_iter().find_map(|log| {
            let waiting = now.saturating_duration_since(progress.stalled_since[log]?);
            (waiting > self.behind_after).then(|| Behind {
                log,
                witnessed: served[log].as_ref().map(|tree| tree.size),
                waiting,
                failing: progress
                    .witnesses
                    .iter()
                    .filter_map(|witness| {
                        let error = witness.logs[log].last_error.clone()?;
                        Some((witness.name.clone(), error))
                    })
                    .collect(),
            })
        })
    }

    /// The register's witnessing for `/metrics`, its logs' signed sizes
    /// being `signed`.
    pub fn sizes(&self, signed: PerLog<u64>) -> WitnessingSizes {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let served = self.served.borrow();
        WitnessingSizes {
            signed,
            witnessed: PerLog::from_fn(|log| served[log].as_ref().map(|tree| tree.size)),
            witnesses: progress
                .witnesses
                .iter()
                .flat_map(|witness| {
                    witness.logs.iter().map(|(log, progress)| WitnessCounts {
                        witness: witness.name.clone(),
                        log,
                        cosigned_size: progress.size,
                        outcomes: progress.outcomes,
                    })
                })
                .collect(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A register's witnessing, running on its own thread until stopped.
#[derive(Debug)]
pub struct Witnessing {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl Witnessing {
    /// Tells the thread to stop: requests in flight are abandoned (each
    /// ends by its timeout on a thread of its own; what a witness cosigned
    /// meanwhile it says again in a 409 after a restart).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops the thread and waits for it.
    pub fn join(self) {
        self.stop();
        // A panic has already ended the witnessing; nothing more to report.
        let _ = self.thread.join();
    }
}

/// A register's witnessing with its state read, checked and ready to serve,
/// not yet running (the register's sequencer starts between the two).
#[derive(Debug)]
pub struct PreparedWitnessing<B: regis_store::KvBackend> {
    rounds: Rounds<B>,
}

impl<B: DirBackend> PreparedWitnessing<B> {
    /// Reads the state of the register `name` in `dir` ([`STATE_FILE`], if
    /// any) and checks it: each witnessed checkpoint must be signed by its
    /// log and its tree a prefix of the store's (else the register is not
    /// served: its state is damaged or not its own). A checkpoint whose
    /// cosignatures no longer meet `policy` (the policy changed) is not
    /// served; the next round replaces it.
    pub fn prepare(
        name: &str,
        dir: PathBuf,
        store: Store<B>,
        logs: PerLog<LogKey>,
        policy: Arc<PolicyFile>,
        settings: &WitnessSettings,
    ) -> Result<PreparedWitnessing<B>, ServerError> {
        let failed = |error: String| ServerError::Witnessing {
            name: name.to_owned(),
            error,
        };
        let mut peers: Vec<Peer> = policy
            .policy()
            .witnesses()
            .iter()
            .filter_map(|witness| {
                let Some(url) = &witness.url else {
                    tracing::warn!(
                        register = name,
                        witness = witness.name,
                        "the witness policy gives this witness no URL: it is never asked"
                    );
                    return None;
                };
                Some(Peer {
                    name: witness.name.clone(),
                    key: witness.verifier.to_string(),
                    verifier: witness.verifier.clone(),
                    url: format!("{}/add-checkpoint", url.trim_end_matches('/')),
                    failures: 0,
                    retry_at: None,
                    logs: PerLog::default(),
                })
            })
            .collect();
        let saved = read_state(&dir).map_err(failed)?;
        for (log, size, key) in &saved.sizes {
            if let Some(peer) = peers.iter_mut().find(|peer| peer.key == *key) {
                peer.logs[*log].size = *size;
            }
        }
        let snapshot = store
            .snapshot()
            .map_err(|error| failed(format!("reading the store: {error}")))?;
        let now = unix_now();
        let mut witnessed = PerLog::default();
        for (log, text) in saved.checkpoints {
            let Some(text) = text else { continue };
            let (tree, signed) = check_saved(&snapshot, log, &logs[log], &text)
                .map_err(|error| failed(format!("its witnessed {log} checkpoint {error}")))?;
            match policy
                .policy()
                .verify(&signed, &logs[log].origin, &logs[log].verifier, now)
            {
                Ok(_) => witnessed[log] = Some(tree),
                Err(error) => tracing::warn!(
                    register = name,
                    %log,
                    %error,
                    "the witnessed checkpoint does not meet the witness policy now; not served"
                ),
            }
        }
        drop(snapshot);
        let shared = Arc::new(WitnessedState {
            policy: Arc::clone(&policy),
            behind_after: settings.behind_after,
            served: watch::Sender::new(witnessed.clone()),
            progress: Mutex::new(Progress {
                witnesses: peers
                    .iter()
                    .map(|peer| WitnessProgress {
                        name: peer.name.clone(),
                        logs: PerLog::from_fn(|log| LogProgress {
                            size: peer.logs[log].size,
                            ..LogProgress::default()
                        }),
                    })
                    .collect(),
                stalled_since: PerLog::default(),
            }),
        });
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(PreparedWitnessing {
            rounds: Rounds {
                name: name.to_owned(),
                dir,
                store,
                logs,
                policy,
                interval: settings.interval,
                agent,
                peers,
                shared,
                witnessed,
                written: None,
                write_failures: 0,
                write_retry_at: None,
            },
        })
    }

    /// What the server serves from it.
    pub fn state(&self) -> Arc<WitnessedState> {
        Arc::clone(&self.rounds.shared)
    }

    /// Starts the thread, which watches `checkpoints` (the sequencer's).
    pub fn spawn(
        self,
        checkpoints: watch::Receiver<PerLog<SignedTree>>,
    ) -> Result<Witnessing, ServerError> {
        let (stop, stopped) = watch::channel(false);
        let name = self.rounds.name.clone();
        let rounds = self.rounds;
        let thread = std::thread::Builder::new()
            .name(format!("witnessing {name}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(register = %rounds.name, %error, "witnessing could not start");
                        return;
                    }
                };
                runtime.block_on(rounds.run(checkpoints, stopped));
                // Requests still in flight end by their own timeout.
                runtime.shutdown_background();
            })
            .map_err(|error| ServerError::Witnessing {
                name,
                error: format!("starting its thread: {error}"),
            })?;
        Ok(Witnessing { stop, thread })
    }
}

/// The state file, as read.
#[derive(Debug, Default, PartialEq, Eq)]
struct SavedState {
    /// (log, size, witness's verifier key).
    sizes: Vec<(Log, u64, String)>,
    /// Each log's witnessed checkpoint, as a note.
    checkpoints: PerLog<Option<String>>,
}

fn parse_log(word: &str) -> Option<Log> {
    PerLog::<()>::LOGS
        .into_iter()
        .find(|log| log.as_str() == word)
}

/// The state file's bytes (`spec/witness.md`).
fn encode_state(state: &SavedState) -> Vec<u8> {
    let mut out = format!("{STATE_VERSION}\n").into_bytes();
    for (log, size, key) in &state.sizes {
        out.extend_from_slice(format!("witness {} {size} {key}\n", log.as_str()).as_bytes());
    }
    for (log, text) in state.checkpoints.iter() {
        if let Some(text) = text {
            out.extend_from_slice(
                format!("checkpoint {} {}\n", log.as_str(), text.len()).as_bytes(),
            );
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// Parses a state file strictly; the error says which line is wrong.
fn decode_state(bytes: &[u8]) -> Result<SavedState, String> {
    let mut state = SavedState::default();
    let mut rest = bytes;
    let mut number = 0usize;
    while !rest.is_empty() {
        number += 1;
        let at = number;
        let bad = |what: &str| format!("line {at}: {what}");
        let end = rest
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or_else(|| bad("it has no newline"))?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| bad("it is not UTF-8"))?;
        rest = &rest[end + 1..];
        if number == 1 {
            if line != STATE_VERSION {
                return Err(bad(&format!("it is not {STATE_VERSION}")));
            }
            continue;
        }
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["witness", log, size, key] => {
                let log = parse_log(log).ok_or_else(|| bad("the log is not user or system"))?;
                let size = parse_decimal(size).map_err(|_| bad("the size is not a number"))?;
                Verifier::parse(key).map_err(|e| bad(&format!("the witness's key: {e}")))?;
                if state.sizes.iter().any(|(l, _, k)| *l == log && k == key) {
                    return Err(bad("this witness's size for this log was given before"));
                }
                state.sizes.push((log, size, (*key).to_owned()));
            }
            ["checkpoint", log, length] => {
                let log = parse_log(log).ok_or_else(|| bad("the log is not user or system"))?;
                let length = parse_decimal(length)
                    .ok()
                    .and_then(|length| usize::try_from(length).ok())
                    .filter(|&length| length <= rest.len())
                    .ok_or_else(|| bad("the note's length is not a number within the file"))?;
                if state.checkpoints[log].is_some() {
                    return Err(bad("this log's checkpoint was given before"));
                }
                let note = std::str::from_utf8(&rest[..length])
                    .map_err(|_| bad("the note is not UTF-8"))?;
                number += note.matches('\n').count();
                state.checkpoints[log] = Some(note.to_owned());
                rest = &rest[length..];
            }
            _ => return Err(bad("it is not a witness or checkpoint line")),
        }
    }
    if number == 0 {
        return Err("it is empty".to_owned());
    }
    Ok(state)
}

/// The state in `dir`, or none if it has no state file yet.
fn read_state(dir: &Path) -> Result<SavedState, String> {
    use std::io::Read as _;
    let path = dir.join(STATE_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SavedState::default());
        }
        Err(error) => return Err(format!("reading its state file {STATE_FILE}: {error}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("reading its state file {STATE_FILE}: {error}"))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(format!(
            "its state file {STATE_FILE} is larger than {MAX_STATE_BYTES} bytes"
        ));
    }
    decode_state(&bytes).map_err(|error| format!("its state file {STATE_FILE}: {error}"))
}

fn parse_note(text: &str) -> Result<SignedCheckpoint, String> {
    SignedCheckpoint::parse(text.as_bytes())
        .map_err(|error| format!("is not a checkpoint: {error}"))
}

/// A saved witnessed checkpoint of `log`, checked: signed by the log, and
/// its tree a prefix of the store's (consistent with the store's newest
/// signed checkpoint, by a proof from stored hashes).
fn check_saved<S: regis_store::KvSnapshot>(
    snapshot: &regis_store::Snapshot<S>,
    log: Log,
    key: &LogKey,
    text: &str,
) -> Result<(SignedTree, SignedCheckpoint), String> {
    let signed = parse_note(text)?;
    signed
        .verify(&key.origin, &key.verifier, &Verifiers::default())
        .map_err(|error| format!("is not the log's: {error}"))?;
    let tree = SignedTree {
        size: signed.checkpoint().size(),
        root: *signed.checkpoint().root_hash(),
        text: text.to_owned(),
    };
    let stored = snapshot
        .checkpoint(log)
        .map_err(|error| format!("cannot be checked: {error}"))?
        .ok_or("is ahead of the log, which has no signed checkpoint")?;
    if tree.size > stored.size {
        return Err(format!(
            "(size {}) is ahead of the log's signed checkpoint (size {})",
            tree.size, stored.size
        ));
    }
    let proof = snapshot
        .consistency_proof(log, tree.size, stored.size)
        .map_err(|error| format!("cannot be checked: {error}"))?;
    verify_consistency(tree.size, stored.size, &proof, &tree.root, &stored.root).map_err(
        |error| {
            format!(
                "(size {}) is not a prefix of the log's tree: {error}",
                tree.size
            )
        },
    )?;
    Ok((tree, signed))
}

/// POSIX seconds now (0 before 1970: then every cosignature is "in the
/// future" and none is accepted until the clock is right).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A policy witness with a URL, and what the log knows of it.
#[derive(Debug)]
struct Peer {
    name: String,
    verifier: Verifier,
    /// Its verifier key string: what the state file keys it by.
    key: String,
    /// `<submission prefix>/add-checkpoint`.
    url: String,
    /// Failures in a row (429, 5xx, timeouts, connections).
    failures: u32,
    /// Not asked before this (backing off).
    retry_at: Option<Instant>,
    logs: PerLog<PeerLog>,
}

#[derive(Clone, Debug, Default)]
struct PeerLog {
    /// The size it last cosigned (or said it had, in a 409); 0 at first.
    size: u64,
    /// Its cosignature of the checkpoint of this size.
    cosignature: Option<(u64, NoteSignature)>,
    /// The checkpoint size it refused: not asked again before a newer one.
    refused: Option<u64>,
    /// A request to it about this log is in flight: no other is sent
    /// until it is answered (or times out).
    asking: bool,
    /// The checkpoint size it was asked about again after a 409: a second
    /// 409 about it is a refusal.
    conflicted: Option<u64>,
}

/// Whether and when a witness is to be asked about a checkpoint.
enum Ask {
    Now,
    At(Instant),
    Never,
}

impl Peer {
    /// Its cosignature of `log`'s checkpoint of `size`, if it gave one.
    fn cosigned(&self, log: Log, size: u64) -> Option<&NoteSignature> {
        match &self.logs[log].cosignature {
            Some((at, cosignature)) if *at == size => Some(cosignature),
            _ => None,
        }
    }

    fn ask(&self, log: Log, size: u64, now: Instant) -> Ask {
        let state = &self.logs[log];
        // A recorded size beyond the checkpoint's would be a state file
        // from a store since rolled back, which opening refuses.
        if state.asking
            || self.cosigned(log, size).is_some()
            || state.refused == Some(size)
            || state.size > size
        {
            return Ask::Never;
        }
        match self.retry_at {
            Some(at) if at > now => Ask::At(at),
            _ => Ask::Now,
        }
    }
}

/// What a witness's answer comes to.
#[derive(Debug)]
enum Answer {
    Cosigned(NoteSignature),
    /// 409 `text/x.tlog.size`: its latest size.
    Conflict(u64),
    /// A 4xx (but 429), or a 409 that retrying cannot mend: reported.
    Refused(String),
    /// A 200 whose cosignature is missing or does not verify.
    InvalidCosignature(String),
    /// 429, 5xx, a timeout, a failed connection, an answer too large.
    Unavailable(String),
}

impl Answer {
    fn outcome(&self) -> WitnessOutcome {
        match self {
            Answer::Cosigned(_) => WitnessOutcome::Cosigned,
            Answer::Conflict(_) => WitnessOutcome::Conflict,
            Answer::Refused(_) => WitnessOutcome::Refused,
            Answer::InvalidCosignature(_) => WitnessOutcome::InvalidCosignature,
            Answer::Unavailable(_) => WitnessOutcome::Unavailable,
        }
    }
}

/// A witness's HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Whether its `Content-Type` is `text/x.tlog.size`.
    size_body: bool,
    body: Vec<u8>,
}

/// `POST url` with `body`, bounded by the agent's timeout and
/// [`MAX_ANSWER_BYTES`].
fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<Reply, String> {
    let mut response = agent
        .post(url)
        .send(body)
        .map_err(|error| error.to_string())?;
    let size_body = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(SIZE_CONTENT_TYPE));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|error| format!("reading its answer: {error}"))?;
    Ok(Reply {
        status,
        size_body,
        body,
    })
}

/// The start of an answer's body, for a report: one line, printable, short.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// What `reply` (to an add-checkpoint of the note whose text is `text`)
/// comes to, `peer` being the witness asked.
fn judge(reply: Result<Reply, String>, peer: &Peer, text: &str, now: u64) -> Answer {
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => return Answer::Unavailable(error),
    };
    match reply.status {
        200 => check_cosignature(&reply.body, &peer.verifier, text, now),
        409 if reply.size_body => match parse_size_body(&reply.body) {
            Ok(size) => Answer::Conflict(size),
            Err(error) => Answer::Refused(format!("409 with a size that does not parse: {error}")),
        },
        429 | 500..=599 => {
            Answer::Unavailable(format!("status {}: {}", reply.status, excerpt(&reply.body)))
        }
        status => Answer::Refused(format!("status {status}: {}", excerpt(&reply.body))),
    }
}

/// The witness's cosignature among the signature lines of a 200 `body`:
/// lines of other keys are ignored (tlog-witness), a line of its key must
/// verify over `text` with a timestamp neither zero nor more than
/// [`MAX_FUTURE_SKEW`] ahead of `now`.
fn check_cosignature(body: &[u8], key: &Verifier, text: &str, now: u64) -> Answer {
    let lines = match parse_cosignature_lines(body) {
        Ok(lines) => lines,
        Err(error) => {
            return Answer::InvalidCosignature(format!(
                "its 200 answer is not signature lines: {error}"
            ));
        }
    };
    let mut found = None;
    for line in lines {
        if line.name() != key.name() || line.key_id() != Some(key.key_id()) {
            continue;
        }
        match key.verify(text, line.signature()) {
            Ok(Some(0)) => {
                return Answer::InvalidCosignature("its cosignature has timestamp 0".to_owned());
            }
            Ok(Some(timestamp)) if timestamp > now.saturating_add(MAX_FUTURE_SKEW) => {
                return Answer::InvalidCosignature(format!(
                    "its cosignature's timestamp {timestamp} is in the future (now {now})"
                ));
            }
            Ok(Some(_)) => {
                found.get_or_insert(line);
            }
            Ok(None) => {
                return Answer::InvalidCosignature(
                    "its key is not a cosignature/v1 key".to_owned(),
                );
            }
            Err(error) => {
                return Answer::InvalidCosignature(format!(
                    "its cosignature does not verify: {error}"
                ));
            }
        }
    }
    found.map_or_else(
        || {
            Answer::InvalidCosignature(format!(
                "its answer has no cosignature from its key {}+{}",
                key.name(),
                key.key_id()
            ))
        },
        Answer::Cosigned,
    )
}

/// The back-off after `failures` failures in a row.
fn back_off(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    FIRST_BACK_OFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACK_OFF)
}

/// What the loop does next.
enum Step {
    /// Witnesses to ask, or a state to write.
    Work,
    /// Nothing now; something at this time (a back-off ends).
    At(Instant),
    /// Nothing until a new checkpoint or an answer.
    Idle,
}

/// A checkpoint a witness is asked to cosign, and its note's text (what
/// a cosignature signs).
#[derive(Debug)]
struct Target {
    tree: SignedTree,
    text: String,
}

impl Target {
    fn new(tree: &SignedTree) -> Result<Target, String> {
        Ok(Target {
            text: parse_note(&tree.text)?.note().text().to_owned(),
            tree: tree.clone(),
        })
    }
}

/// A request to a witness, and its reply.
struct Asked {
    peer: usize,
    log: Log,
    target: Arc<Target>,
    reply: Result<Reply, String>,
}

/// The witnessing of one register: its thread's state.
#[derive(Debug)]
struct Rounds<B: regis_store::KvBackend> {
    name: String,
    dir: PathBuf,
    store: Store<B>,
    logs: PerLog<LogKey>,
    policy: Arc<PolicyFile>,
    interval: Duration,
    agent: ureq::Agent,
    peers: Vec<Peer>,
    shared: Arc<WitnessedState>,
    /// What is durable and served.
    witnessed: PerLog<Option<SignedTree>>,
    /// The state file's bytes as last written (none yet: written at the
    /// first round).
    written: Option<Vec<u8>>,
    write_failures: u32,
    write_retry_at: Option<Instant>,
}

impl<B: DirBackend> Rounds<B> {
    /// Rounds until stopped. A round asks each witness due about each
    /// log's newest checkpoint; answers are taken as they come, so a slow
    /// witness holds up only its own next request (one at a time per
    /// witness and log), never the others' or the next round.
    async fn run(
        mut self,
        mut checkpoints: watch::Receiver<PerLog<SignedTree>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut asks: JoinSet<Asked> = JoinSet::new();
        let mut last_round: Option<Instant> = None;
        let mut sequencer_running = true;
        loop {
            if *stop.borrow() {
                return;
            }
            let newest = checkpoints.borrow_and_update().clone();
            let now = Instant::now();
            self.mark_stalls(&newest, PerLog::default(), now);
            let (wake, on_change) = match self.next_step(&newest, now) {
                Step::Work => match last_round.map(|at| at + self.interval) {
                    // Commits meanwhile join the round: no need to wake
                    // for them.
                    Some(earliest) if earliest > now => (Some(earliest), false),
                    _ => {
                        last_round = Some(now);
                        self.round(&newest, now, &mut asks);
                        continue;
                    }
                },
                Step::At(at) => (Some(at), true),
                Step::Idle => (None, true),
            };
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
                wake.unwrap_or(now + MAX_BACK_OFF),
            ));
            tokio::select! {
                _ = stop.changed() => return,
                Some(joined) = asks.join_next() => match joined {
                    Ok(asked) => self.take(asked, &newest, &mut asks),
                    Err(error) => {
                        tracing::error!(register = %self.name, %error, "a request to a witness failed");
                    }
                },
                changed = checkpoints.changed(), if on_change && sequencer_running => {
                    // Once the sequencer has stopped, only the stop is
                    // awaited.
                    sequencer_running = changed.is_ok();
                }
                () = sleep, if wake.is_some() => {}
            }
        }
    }

    /// Whether `log`'s newest checkpoint is beyond the witnessed one.
    fn pending(&self, log: Log, newest: &SignedTree) -> bool {
        self.witnessed[log]
            .as_ref()
            .is_none_or(|witnessed| newest.size > witnessed.size)
    }

    /// The policy names of the witnesses that cosigned `log`'s checkpoint
    /// of `size`.
    fn cosigners(&self, log: Log, size: u64) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|peer| peer.cosigned(log, size).is_some())
            .map(|peer| peer.name.as_str())
            .collect()
    }

    fn quorum_met(&self, log: Log, size: u64) -> bool {
        self.policy.policy().quorum_met(self.cosigners(log, size))
    }

    /// Whether `log`'s newest checkpoint has the cosignatures it needs and
    /// only the state's write is missing to serve it.
    fn to_write(&self, log: Log, newest: &SignedTree) -> bool {
        self.pending(log, newest) && self.quorum_met(log, newest.size)
    }

    fn next_step(&self, newest: &PerLog<SignedTree>, now: Instant) -> Step {
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |next| next.min(at)));
        for (log, target) in newest.iter() {
            if !self.pending(log, target) {
                continue;
            }
            if self.to_write(log, target) {
                match self.write_retry_at {
                    Some(at) if at > now => soonest(at),
                    _ => return Step::Work,
                }
                continue;
            }
            for peer in &self.peers {
                match peer.ask(log, target.size, now) {
                    Ask::Now => return Step::Work,
                    Ask::At(at) => soonest(at),
                    Ask::Never => {}
                }
            }
        }
        next.map_or(Step::Idle, Step::At)
    }

    /// Marks since when each log's witnessed checkpoint has stood still
    /// behind a newer one (for `/readyz`): from when one was first seen
    /// waiting, or from when the witnessed one last `advanced`.
    fn mark_stalls(&self, newest: &PerLog<SignedTree>, advanced: PerLog<bool>, now: Instant) {
        let pending = PerLog::from_fn(|log| self.pending(log, &newest[log]));
        self.shared.update(|progress| {
            for (log, pending) in pending {
                let since = &mut progress.stalled_since[log];
                *since = match (pending, advanced[log]) {
                    (false, _) => None,
                    (true, true) => Some(now),
                    (true, false) => Some(since.unwrap_or(now)),
                };
            }
        });
    }

    /// The request body asking a witness at `old` to cosign `target`, with
    /// the consistency proof from the store.
    fn request_body(&self, log: Log, old: u64, target: &SignedTree) -> Result<Vec<u8>, String> {
        let checkpoint = parse_note(&target.text)?;
        let proof = self
            .store
            .snapshot()
            .map_err(|error| format!("reading the store: {error}"))?
            .consistency_proof(log, old, target.size)
            .map_err(|error| {
                format!(
                    "making the consistency proof from {old} to {}: {error}",
                    target.size
                )
            })?;
        Ok(AddCheckpoint {
            old_size: old,
            proof,
            checkpoint,
        }
        .to_bytes())
    }

    /// Sends the request asking witness `peer` to cosign `log`'s `target`,
    /// from the size it is known to have.
    fn send(&mut self, asks: &mut JoinSet<Asked>, peer: usize, log: Log, target: Arc<Target>) {
        let Some(witness) = self.peers.get(peer) else {
            return;
        };
        let old = witness.logs[log].size;
        let body = match self.request_body(log, old, &target.tree) {
            Ok(body) => body,
            Err(error) => {
                // The store's failure, not the witness's: logged, and the
                // witness asked again at the next round.
                tracing::error!(register = %self.name, %log, %error, "no request to a witness");
                return;
            }
        };
        let agent = self.agent.clone();
        let url = witness.url.clone();
        if let Some(witness) = self.peers.get_mut(peer) {
            witness.logs[log].asking = true;
        }
        asks.spawn_blocking(move || Asked {
            peer,
            log,
            reply: post(&agent, &url, &body),
            target,
        });
    }

    /// A round: asks every witness due about each log's newest checkpoint,
    /// all at once, and writes a state whose write is due.
    fn round(&mut self, newest: &PerLog<SignedTree>, now: Instant, asks: &mut JoinSet<Asked>) {
        let mut write = false;
        for (log, tree) in newest.iter() {
            if !self.pending(log, tree) {
                continue;
            }
            if self.to_write(log, tree) {
                write = true;
                continue;
            }
            let target = match Target::new(tree) {
                Ok(target) => Arc::new(target),
                Err(error) => {
                    tracing::error!(register = %self.name, %log, %error, "the log's checkpoint");
                    continue;
                }
            };
            for peer in 0..self.peers.len() {
                if matches!(self.peers[peer].ask(log, tree.size, now), Ask::Now) {
                    self.send(asks, peer, log, Arc::clone(&target));
                }
            }
        }
        if write {
            self.settle(newest);
        }
    }

    /// Takes one answer: records what it says of the witness, asks again
    /// at once after a 409 that gave a size to ask from, and writes and
    /// serves a checkpoint as soon as its cosignatures meet the quorum (or,
    /// once no request is left in flight, the witnesses' new sizes).
    fn take(&mut self, asked: Asked, newest: &PerLog<SignedTree>, asks: &mut JoinSet<Asked>) {
        let Asked {
            peer,
            log,
            target,
            reply,
        } = asked;
        let size = target.tree.size;
        let Some(witness) = self.peers.get(peer) else {
            return;
        };
        let answer = judge(reply, witness, &target.text, unix_now());
        let outcome = answer.outcome();
        let Some(witness) = self.peers.get_mut(peer) else {
            return;
        };
        witness.logs[log].asking = false;
        let mut retry = false;
        // `None`: the last error stands (a 409 mended at once).
        let report: Option<Option<String>> = match answer {
            Answer::Cosigned(cosignature) => {
                witness.failures = 0;
                witness.retry_at = None;
                witness.logs[log].size = size;
                witness.logs[log].cosignature = Some((size, cosignature));
                Some(None)
            }
            Answer::Conflict(at) if at <= size && witness.logs[log].conflicted != Some(size) => {
                witness.logs[log].size = at;
                witness.logs[log].conflicted = Some(size);
                retry = true;
                None
            }
            Answer::Conflict(at) => {
                witness.logs[log].refused = Some(size);
                if at > size {
                    // It says it has cosigned a larger tree of this log than
                    // this checkpoint's: a fork, a log rolled back, or a
                    // witness in error. Its size is not taken: the next
                    // checkpoint is sent from the size it last cosigned, and
                    // it says again what it has.
                    Some(Some(format!(
                        "409: it says it has cosigned size {at}, beyond this checkpoint (size \
                         {size})"
                    )))
                } else {
                    Some(Some(format!(
                        "409: size {at} again, after being asked from that size"
                    )))
                }
            }
            Answer::Refused(error) | Answer::InvalidCosignature(error) => {
                witness.failures = 0;
                witness.retry_at = None;
                witness.logs[log].refused = Some(size);
                Some(Some(error))
            }
            Answer::Unavailable(error) => {
                witness.failures = witness.failures.saturating_add(1);
                let pause = back_off(witness.failures);
                witness.retry_at = Some(Instant::now() + pause);
                Some(Some(format!(
                    "{error} (asked again in {} s)",
                    pause.as_secs()
                )))
            }
        };
        let known = witness.logs[log].size;
        if let Some(Some(error)) = &report {
            tracing::warn!(
                register = %self.name, witness = %witness.name, %log, checkpoint = size, %error,
                "witness did not cosign"
            );
        }
        self.shared.update(|progress| {
            if let Some(progress) = progress.witnesses.get_mut(peer) {
                let state = &mut progress.logs[log];
                state.size = known;
                if let Some(count) = state.outcomes.get_mut(outcome.index()) {
                    *count += 1;
                }
                if let Some(report) = report {
                    state.last_error = report;
                }
            }
        });
        if retry {
            self.send(asks, peer, log, target);
        }
        // Served as soon as the quorum is met: a slow witness delays
        // nothing it is not needed for.
        if self.to_write(log, &newest[log]) || asks.is_empty() {
            self.settle(newest);
        }
    }

    /// Gives each log whose newest checkpoint's cosignatures meet the
    /// quorum that checkpoint as its witnessed one; writes the state (with
    /// every witness's size) if it changed, and only then serves it.
    fn settle(&mut self, newest: &PerLog<SignedTree>) {
        let now = unix_now();
        let mut next = self.witnessed.clone();
        for (log, target) in newest.iter() {
            if self.to_write(log, target) {
                next[log] = self.assemble(log, target, now).or(next[log].take());
            }
        }
        let state = SavedState {
            sizes: self
                .peers
                .iter()
                .flat_map(|peer| {
                    peer.logs
                        .iter()
                        .map(|(log, state)| (log, state.size, peer.key.clone()))
                })
                .collect(),
            checkpoints: next
                .as_ref()
                .map(|_, tree| tree.as_ref().map(|tree| tree.text.clone())),
        };
        let bytes = encode_state(&state);
        if self.written.as_ref() != Some(&bytes) {
            if let Err(error) = write_atomically(&self.dir, STATE_FILE, &bytes, 0o644) {
                self.write_failures = self.write_failures.saturating_add(1);
                let pause = back_off(self.write_failures);
                self.write_retry_at = Some(Instant::now() + pause);
                tracing::error!(
                    register = %self.name,
                    %error,
                    retry_seconds = pause.as_secs(),
                    "writing the witnessing state failed; the witnessed checkpoints written \
                     before are still served"
                );
                return;
            }
            self.written = Some(bytes);
        }
        self.write_failures = 0;
        self.write_retry_at = None;
        let advanced = PerLog::from_fn(|log| next[log] != self.witnessed[log]);
        if next != self.witnessed {
            self.witnessed = next.clone();
            // `/readyz` learns first, so that no one who sees the new
            // checkpoint is then told the log is behind.
            self.mark_stalls(newest, advanced, Instant::now());
            self.shared.served.send_replace(next);
        }
    }

    /// `log`'s `target` with the cosignatures gathered for it, if they meet
    /// the policy, checked whole as a client checks it. If they do not
    /// (which each cosignature's own check should prevent), the witnesses
    /// that gave them are not asked about it again.
    fn assemble(&mut self, log: Log, target: &SignedTree, now: u64) -> Option<SignedTree> {
        let mut signed = parse_note(&target.text).ok()?;
        let mut added = Ok(());
        for peer in &self.peers {
            if let Some(cosignature) = peer.cosigned(log, target.size) {
                added = added.and(
                    signed
                        .add_signature(cosignature.clone())
                        .map_err(|e| e.to_string()),
                );
            }
        }
        let key = &self.logs[log];
        let checked = added.and_then(|()| {
            self.policy
                .policy()
                .verify(&signed, &key.origin, &key.verifier, now)
                .map_err(|error| error.to_string())
        });
        match checked {
            Ok(_) => Some(SignedTree {
                size: target.size,
                root: target.root,
                text: signed.to_string(),
            }),
            Err(error) => {
                tracing::error!(
                    register = %self.name, %log, %error,
                    "the gathered cosignatures fail the witness policy"
                );
                for peer in &mut self.peers {
                    if peer.cosigned(log, target.size).is_some() {
                        peer.logs[log].cosignature = None;
                        peer.logs[log].refused = Some(target.size);
                    }
                }
                None
            }
        }
    }
}
