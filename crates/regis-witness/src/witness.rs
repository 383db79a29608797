//! The witness: its trusted logs, each one's last cosigned checkpoint, and
//! the add-checkpoint decision made and persisted one request at a time
//! per log.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use regis_client::audit::Evidence;
use regis_note::{
    AddCheckpoint, AddCheckpointRefusal, Cosignature, Cosigner, Note, NoteSignature,
    SIZE_CONTENT_TYPE, SignedCheckpoint, Verifier, Verifiers, WitnessedTree, check_add_checkpoint,
    format_cosignature_lines, format_size_body,
};

use crate::dir::{CHECKPOINT_FILE, EVIDENCE_DIR, LogFile, origin_hash, read_cosigner, read_logs};
use crate::error::{WitnessError, corrupt, io};
use crate::files::{Disk, Storage, create_dir_durably};

/// Seconds since the Unix epoch, the time cosignatures carry.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock (0 before 1970: cosignatures still get a nonzero,
/// increasing timestamp, see [`Witness`]).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    })
}

/// How a witness reaches the disk and the time.
#[derive(Clone)]
pub struct Options {
    /// Where the state and evidence are written.
    pub storage: Arc<dyn Storage>,
    /// The time cosignatures carry.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            storage: Arc::new(Disk),
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// A witness opened on its data directory (C2SP tlog-witness).
///
/// Each log's requests are decided one at a time, in the order they take
/// its lock: the check against the last cosigned tree, then the new state
/// written durably, then the cosignature answered. A request that finds
/// the state changed by the one before gets a 409, so none rolls another
/// back. A cosignature's timestamp is the clock's, but never below the
/// log's last one (nor 0): a clock set back does not make a later, larger
/// tree look older than one cosigned before it.
pub struct Witness {
    dir: PathBuf,
    cosigner: Cosigner,
    logs: HashMap<String, Arc<TrustedLog>>,
    /// The same logs by [`origin_hash`], for the monitoring path.
    by_hash: HashMap<String, Arc<TrustedLog>>,
    options: Options,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness")
            .field("dir", &self.dir)
            .field("cosigner", &self.cosigner)
            .field("logs", &self.logs.len())
            .finish_non_exhaustive()
    }
}

/// A log the witness trusts.
struct TrustedLog {
    origin: String,
    dir: PathBuf,
    keys: Vec<Verifier>,
    /// Held from the check to the durable write: one request at a time.
    state: Arc<tokio::sync::Mutex<LogState>>,
    /// The stored checkpoint, served to monitors; replaced once durable.
    published: RwLock<Option<Arc<String>>>,
}

/// What a log's requests are checked against.
struct LogState {
    latest: Option<Latest>,
    /// The last checkpoint kept as evidence, so a log that repeats a
    /// request does not fill the disk with copies.
    last_evidence: Option<String>,
}

/// The last checkpoint cosigned for a log.
struct Latest {
    tree: WitnessedTree,
    /// The note as stored: the log's verified signatures and ours.
    signed: SignedCheckpoint,
    /// Our cosignature's timestamp.
    timestamp: u64,
}

/// An HTTP answer: status, media type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

impl Answer {
    /// A plain-text answer; `message` gets its newline here.
    pub fn text(status: u16, message: impl fmt::Display) -> Self {
        Answer {
            status,
            content_type: TEXT,
            body: format!("{message}\n"),
        }
    }

    fn refusal(refusal: &AddCheckpointRefusal) -> Self {
        match refusal {
            AddCheckpointRefusal::Conflict { latest } => Answer {
                status: refusal.status(),
                content_type: SIZE_CONTENT_TYPE,
                body: format_size_body(*latest),
            },
            other => Answer::text(other.status(), other),
        }
    }
}

impl Witness {
    /// Opens the witness in `dir`, on the disk and the system clock.
    pub fn open(dir: &Path) -> Result<Self, WitnessError> {
        Self::open_with(dir, Options::default())
    }

    /// Opens the witness in `dir` with `options`. Every stored checkpoint
    /// must verify with its log's keys and carry this witness's
    /// cosignature: a witness that cannot read its state refuses to start
    /// rather than forget what it cosigned.
    pub fn open_with(dir: &Path, options: Options) -> Result<Self, WitnessError> {
        let cosigner = read_cosigner(dir)?;
        let own = Verifiers::new([cosigner.verifier()]).map_err(|e| corrupt(dir)(e.to_string()))?;
        let evidence = dir.join(EVIDENCE_DIR);
        create_dir_durably(&evidence).map_err(io("creating", &evidence))?;
        let mut logs = HashMap::new();
        let mut by_hash = HashMap::new();
        for (log_dir, file) in read_logs(dir)? {
            let latest = read_latest(&log_dir, &file, &own)?;
            let published = latest
                .as_ref()
                .map(|latest| Arc::new(latest.signed.to_string()));
            let log = Arc::new(TrustedLog {
                origin: file.origin,
                dir: log_dir,
                keys: file.keys,
                state: Arc::new(tokio::sync::Mutex::new(LogState {
                    latest,
                    last_evidence: None,
                })),
                published: RwLock::new(published),
            });
            by_hash.insert(origin_hash(&log.origin), Arc::clone(&log));
            logs.insert(log.origin.clone(), log);
        }
        Ok(Witness {
            dir: dir.to_owned(),
            cosigner,
            logs,
            by_hash,
            options,
        })
    }

    /// The witness's verifier key (type 0x04).
    pub fn verifier(&self) -> Verifier {
        self.cosigner.verifier()
    }

    /// The origins of the logs it trusts, sorted.
    pub fn origins(&self) -> Vec<&str> {
        let mut origins: Vec<&str> = self.logs.keys().map(String::as_str).collect();
        origins.sort_unstable();
        origins
    }

    /// The last checkpoint cosigned for the log whose origin hashes to
    /// `origin_hash` (lowercase hex), with the log's signatures and ours.
    pub fn checkpoint(&self, origin_hash: &str) -> Option<Arc<String>> {
        self.by_hash
            .get(origin_hash)?
            .published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answers an add-checkpoint request body (tlog-witness).
    pub(crate) async fn add_checkpoint(self: &Arc<Self>, body: &[u8]) -> Answer {
        let request = match AddCheckpoint::parse(body) {
            Ok(request) => request,
            Err(error) => return Answer::text(400, format_args!("malformed request: {error}")),
        };
        let origin = request.checkpoint.checkpoint().origin();
        let Some(log) = self.logs.get(origin) else {
            let refusal = AddCheckpointRefusal::UnknownLog;
            return Answer::text(
                refusal.status(),
                format_args!("{refusal}: this witness does not know {origin:?}"),
            );
        };
        // Owned, and moved into the blocking task: a client that goes away
        // drops this future, but the lock is held until the write is done.
        let state = Arc::clone(&log.state).lock_owned().await;
        let witness = Arc::clone(self);
        let log = Arc::clone(log);
        tokio::task::spawn_blocking(move || {
            let mut state = state;
            witness.decide(&log, &mut state, &request)
        })
        .await
        .unwrap_or_else(|error| Answer::text(500, format_args!("the request failed: {error}")))
    }

    /// The check, and then the durable write or the evidence, under the
    /// log's lock.
    fn decide(&self, log: &TrustedLog, state: &mut LogState, request: &AddCheckpoint) -> Answer {
        let latest = state.latest.as_ref().map(|latest| latest.tree);
        match check_add_checkpoint(request, Some(&log.keys), latest.as_ref()) {
            Ok(tree) => self.cosign(log, state, &request.checkpoint, tree),
            Err(refusal) => {
                if let AddCheckpointRefusal::SameSizeDifferentRoot { .. } = refusal {
                    self.keep_evidence(log, state, &request.checkpoint);
                }
                Answer::refusal(&refusal)
            }
        }
    }

    /// Cosigns `submitted`, whose tree is `tree`, once the new state is
    /// durable.
    fn cosign(
        &self,
        log: &TrustedLog,
        state: &mut LogState,
        submitted: &SignedCheckpoint,
        tree: WitnessedTree,
    ) -> Answer {
        let floor = state.latest.as_ref().map_or(1, |latest| latest.timestamp);
        let timestamp = (self.options.clock)().max(floor);
        let cosignature = match self.cosigner.cosign(submitted.checkpoint(), timestamp) {
            Ok(cosignature) => cosignature,
            Err(error) => return Answer::text(500, format_args!("cosigning: {error}")),
        };
        let stored = match stored_checkpoint(submitted, &log.keys, &cosignature) {
            Ok(stored) => stored,
            Err(error) => {
                return Answer::text(500, format_args!("keeping the checkpoint: {error}"));
            }
        };
        let text = stored.to_string();
        if let Err(error) = self
            .options
            .storage
            .replace(&log.dir, CHECKPOINT_FILE, text.as_bytes())
        {
            tracing::error!(origin = %log.origin, %error, "the state could not be saved");
            return Answer::text(
                500,
                format_args!(
                    "the witness could not save its state for {:?} ({error}): nothing was cosigned",
                    log.origin
                ),
            );
        }
        state.latest = Some(Latest {
            tree,
            signed: stored,
            timestamp,
        });
        *log.published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(text));
        Answer {
            status: 200,
            content_type: TEXT,
            body: format_cosignature_lines(&[NoteSignature::from(&cosignature)]),
        }
    }

    /// Keeps `submitted`, signed by the log with the size of the last
    /// checkpoint cosigned and another root, beside that checkpoint as fork
    /// evidence (`DIR/evidence/`). Failing to is logged: the answer is the
    /// 422 all the same.
    fn keep_evidence(&self, log: &TrustedLog, state: &mut LogState, submitted: &SignedCheckpoint) {
        let Some(latest) = &state.latest else {
            return;
        };
        let submitted_text = submitted.to_string();
        if state.last_evidence.as_deref() == Some(submitted_text.as_str()) {
            return;
        }
        // The key that signed both: evidence is checked with one key.
        let Some(key) = log
            .keys
            .iter()
            .find(|key| signed_by(&latest.signed, key) && signed_by(submitted, key))
        else {
            tracing::warn!(origin = %log.origin, "a second root for a cosigned size, signed with another of the log's keys: not kept as evidence");
            return;
        };
        let evidence =
            match Evidence::same_size_different_root(&log.origin, key, &latest.signed, submitted) {
                Ok(evidence) => evidence,
                Err(error) => {
                    tracing::error!(origin = %log.origin, %error, "fork evidence does not hold");
                    return;
                }
            };
        match self.write_evidence(log, &evidence.encode()) {
            Ok(path) => {
                tracing::warn!(origin = %log.origin, size = latest.tree.size, path = %path.display(), "the log signed two roots for one size: evidence kept");
                state.last_evidence = Some(submitted_text);
            }
            Err(error) => {
                tracing::error!(origin = %log.origin, %error, "fork evidence could not be written");
            }
        }
    }

    /// Writes evidence to `DIR/evidence/<seconds>-<origin hash>.json`, or
    /// with `-2`, `-3`… before `.json` when that name is taken.
    fn write_evidence(&self, log: &TrustedLog, text: &str) -> io::Result<PathBuf> {
        let dir = self.dir.join(EVIDENCE_DIR);
        let stem = format!("{}-{}", (self.options.clock)(), origin_hash(&log.origin));
        let mut name = format!("{stem}.json");
        let mut taken = 1;
        while dir.join(&name).exists() {
            taken += 1;
            name = format!("{stem}-{taken}.json");
        }
        self.options.storage.replace(&dir, &name, text.as_bytes())?;
        Ok(dir.join(name))
    }
}

/// Whether `signed` carries a signature line of `key` (name and key id).
fn signed_by(signed: &SignedCheckpoint, key: &Verifier) -> bool {
    signed
        .note()
        .signatures()
        .iter()
        .any(|line| line.name() == key.name() && line.key_id() == Some(key.key_id()))
}

/// The checkpoint to keep and serve: the submitted text, the lines of the
/// log's keys (each verified by the check; one per key) and our
/// cosignature. Other lines are not ours to vouch for.
fn stored_checkpoint(
    submitted: &SignedCheckpoint,
    keys: &[Verifier],
    cosignature: &Cosignature,
) -> Result<SignedCheckpoint, String> {
    let mut lines: Vec<NoteSignature> = Vec::new();
    for key in keys {
        let line = submitted
            .note()
            .signatures()
            .iter()
            .find(|line| line.name() == key.name() && line.key_id() == Some(key.key_id()));
        lines.extend(line.cloned());
    }
    lines.push(NoteSignature::from(cosignature));
    let note = Note::new(submitted.note().text(), lines).map_err(|e| e.to_string())?;
    SignedCheckpoint::from_note(note).map_err(|e| e.to_string())
}

/// The checkpoint stored in `log_dir`, if any, checked: the log's
/// signature and this witness's cosignature must verify.
fn read_latest(
    log_dir: &Path,
    log: &LogFile,
    own: &Verifiers,
) -> Result<Option<Latest>, WitnessError> {
    let path = log_dir.join(CHECKPOINT_FILE);
    let bytes = match fs::read(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(io("reading", &path))?,
    };
    let signed = SignedCheckpoint::parse(&bytes).map_err(|e| corrupt(&path)(e.to_string()))?;
    let key = log
        .keys
        .iter()
        .find(|key| signed_by(&signed, key))
        .ok_or_else(|| corrupt(&path)("no signature of the log's keys".to_owned()))?;
    let cosigned = signed
        .verify(&log.origin, key, own)
        .map_err(|e| corrupt(&path)(e.to_string()))?;
    let timestamp = cosigned
        .first()
        .and_then(|cosignature| cosignature.timestamp())
        .ok_or_else(|| corrupt(&path)("not cosigned by this witness".to_owned()))?;
    let checkpoint = signed.checkpoint();
    Ok(Some(Latest {
        tree: WitnessedTree {
            size: checkpoint.size(),
            root: *checkpoint.root_hash(),
        },
        signed,
        timestamp,
    }))
}
