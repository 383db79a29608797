//! Auditing: keeping the last verified checkpoint of each of a register's
//! two logs, and checking that each new one extends it. A new checkpoint
//! that does not (smaller, the same size with another root, or a tree
//! whose verified tiles give another root at the old size) is a fork or a
//! roll-back by the holder of the key; the auditor keeps the two signed
//! checkpoints and the tiles that show it as [`Evidence`], which anyone
//! holding the key can check again ([`Evidence::verify`]). With a witness
//! policy ([`Auditor::with_witness_policy`]) every new checkpoint must
//! carry the cosignatures its quorum needs; the saved ones were accepted
//! before and are checked with the log's key only, so a policy can be
//! added to an audit already under way.
//!
//! # The state file
//!
//! JSON, one object:
//!
//! ```text
//! {"format":"regis-audit-state/1","url":"<base URL>","log-public-key":"<pinned key>",
//!  "user-checkpoint":"<signed note>","system-checkpoint":"<signed note>"}
//! ```
//!
//! # The evidence file
//!
//! JSON, one object:
//!
//! ```text
//! {"format":"regis-fork-evidence/1",
//!  "log":"user"|"system",
//!  "kind":"inconsistent"|"same-size-different-root"|"smaller",
//!  "log-public-key":"<the user log's pinned key>",
//!  "origin":"<the log's origin>",
//!  "old-checkpoint":"<signed note>","new-checkpoint":"<signed note>",
//!  "tiles":{"tile/0/000":"<hex of the tile's bytes as served>",…}}
//! ```
//!
//! `origin` is there only for a log whose key is not named by its origin:
//! a C2SP log that is not a Regis register's, such as Go's checksum
//! database (origin `go.sum database tree`, key `sum.golang.org`), kept by
//! a witness (regis-witness). `log` is then `user`, and `log-public-key`
//! is that log's key. A Regis log's evidence has no `origin`: its origin
//! is its key's name (`<name>/system` for the system log).
//!
//! To check it: both checkpoints are of the log's origin and verify with
//! the log's key (the user log's pinned key, or for the system log that
//! key's public key named `<origin>/system`; with `origin`, the pinned key
//! and that origin). Then by kind:
//! - `inconsistent`: old size < new size; the tiles, read as C2SP
//!   tlog-tiles of the new checkpoint's tree, fold to its root (right edge)
//!   and each full tile to its parent; the tree's root at the old size,
//!   computed from them, is not the old checkpoint's root. Two trees
//!   signed by one key, neither a prefix of the other: a fork.
//! - `same-size-different-root`: equal sizes, different roots: a fork.
//! - `smaller`: the new checkpoint's size is below the old one's; both
//!   signed. It shows the log served a smaller tree after a larger one (the
//!   order is the auditor's word: it is no fork by itself).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use regis_merkle::tile::TilePath;
use regis_merkle::{Edge, TileHashReader, TileSource, TileVerifyError};
use regis_model::Log;
use regis_note::{KeyName, SignedCheckpoint, Verifier, WitnessPolicy};

use crate::client::{Client, VerifiedCheckpoint, tiles_error};
use crate::error::Error;
use crate::http::{FetchError, HttpTiles};

const STATE_FORMAT: &str = "regis-audit-state/1";
const EVIDENCE_FORMAT: &str = "regis-fork-evidence/1";

/// The last checkpoints an auditor verified, one per log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditState {
    /// The user log's.
    pub user: VerifiedCheckpoint,
    /// The system log's.
    pub system: VerifiedCheckpoint,
}

/// What an audit found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// The checkpoints saved before, if any (none: trust on first use).
    pub previous: Option<AuditState>,
    /// The new checkpoints, verified and consistent with the previous ones.
    pub state: AuditState,
}

/// How two checkpoints signed by one key contradict each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkKind {
    /// The new tree's verified tiles give another root at the old size.
    Inconsistent,
    /// Equal sizes, different roots.
    SameSizeDifferentRoot,
    /// The new checkpoint is smaller than the old.
    Smaller,
}

impl ForkKind {
    fn as_str(self) -> &'static str {
        match self {
            ForkKind::Inconsistent => "inconsistent",
            ForkKind::SameSizeDifferentRoot => "same-size-different-root",
            ForkKind::Smaller => "smaller",
        }
    }
}

/// Two checkpoints of one log, both signed by its key, that contradict
/// each other, and the tiles that show it (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Which log.
    pub log: Log,
    /// How they contradict each other.
    pub kind: ForkKind,
    /// The user log's pinned key (with [`Self::origin`], the log's key).
    pub key: Verifier,
    /// The log's origin when its key is not named by it (a log other than
    /// a Regis register's); `None` for a Regis log, whose origin follows
    /// from the key and [`Self::log`].
    pub origin: Option<String>,
    /// The checkpoint saved.
    pub old: VerifiedCheckpoint,
    /// The checkpoint served now.
    pub new: VerifiedCheckpoint,
    /// Tiles of the new tree by path (`tile/0/000`), as served (for
    /// [`ForkKind::Inconsistent`]).
    pub tiles: BTreeMap<String, Vec<u8>>,
}

/// Why an audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Something could not be fetched or does not verify.
    #[error(transparent)]
    Verify(#[from] Error),
    /// The state file is not one this auditor wrote for this register.
    #[error("the audit state: {0}")]
    State(String),
    /// The log forked or rolled back: the evidence.
    #[error(
        "the {} log's checkpoint {} is not consistent with the saved checkpoint {} ({})",
        .0.log, .0.new.size(), .0.old.size(), .0.kind.as_str()
    )]
    Fork(Box<Evidence>),
}

/// Why evidence does not show what it claims.
#[derive(Debug, thiserror::Error)]
#[error("the evidence does not hold: {0}")]
pub struct EvidenceError(String);

/// An auditor of one register, holding the pinned key of its user log (the
/// system log's is derived from it).
#[derive(Clone, Debug)]
pub struct Auditor {
    user: Client,
    system: Client,
}

impl Auditor {
    /// An auditor of the register at `url` whose user log is signed by `key`.
    pub fn new(url: &str, key: Verifier) -> Result<Self, Error> {
        let user = Client::new(url, key)?;
        let system = user.system()?;
        Ok(Auditor { user, system })
    }

    /// This auditor, requiring that every checkpoint of either log it is
    /// served carries cosignatures meeting `policy`
    /// ([`Client::with_witness_policy`]); saved state is read with the log's
    /// key only ([`Client::verify_saved_checkpoint`]).
    pub fn with_witness_policy(self, policy: WitnessPolicy) -> Self {
        let policy = Arc::new(policy);
        Auditor {
            user: self.user.with_witness_policy(Arc::clone(&policy)),
            system: self.system.with_witness_policy(policy),
        }
    }

    /// Reads a state file written by [`Self::encode_state`] for this
    /// register and key, and verifies its checkpoints again.
    pub fn parse_state(&self, bytes: &[u8]) -> Result<AuditState, AuditError> {
        let state = |reason: String| AuditError::State(reason);
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| state(e.to_string()))?;
        let field = |name: &str| {
            json.get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| state(format!("no string field {name:?}")))
        };
        if field("format")? != STATE_FORMAT {
            return Err(state(format!("the format is not {STATE_FORMAT}")));
        }
        if field("url")? != self.user.base_url() || field("log-public-key")? != self.key_string() {
            return Err(state(format!(
                "it was written for {} with key {}, not for {} with key {}",
                field("url")?,
                field("log-public-key")?,
                self.user.base_url(),
                self.key_string()
            )));
        }
        Ok(AuditState {
            user: self
                .user
                .verify_saved_checkpoint(field("user-checkpoint")?.as_bytes(), "the saved state")?,
            system: self.system.verify_saved_checkpoint(
                field("system-checkpoint")?.as_bytes(),
                "the saved state",
            )?,
        })
    }

    /// The state file's text.
    pub fn encode_state(&self, state: &AuditState) -> String {
        let mut text = serde_json::json!({
            "format": STATE_FORMAT,
            "url": self.user.base_url(),
            "log-public-key": self.key_string(),
            "user-checkpoint": state.user.to_string(),
            "system-checkpoint": state.system.to_string(),
        })
        .to_string();
        text.push('\n');
        text
    }

    fn key_string(&self) -> String {
        self.user.key().to_string()
    }

    /// Fetches and verifies both logs' checkpoints and checks that each
    /// extends the `previous` one (from the new tree's tiles; no server
    /// proof is used). With no previous state, the checkpoints are trusted
    /// on first use (after their signatures and tiles are checked).
    pub fn audit(&self, previous: Option<AuditState>) -> Result<Audit, AuditError> {
        match self.audit_once(previous.as_ref()) {
            // A static copy deleted a partial tile of what was read: once
            // more, from its newer checkpoints.
            Err(AuditError::Verify(error)) if error.is_superseded() => {
                self.audit_once(previous.as_ref())
            }
            other => other,
        }
        .map(|state| Audit { previous, state })
    }

    fn audit_once(&self, previous: Option<&AuditState>) -> Result<AuditState, AuditError> {
        let user = self.user.checkpoint()?;
        let system = self.system.checkpoint()?;
        for (client, new) in [(&self.user, &user), (&self.system, &system)] {
            client.verify_tree(new)?;
        }
        if let Some(previous) = previous {
            self.extends(&self.user, &previous.user, &user)?;
            self.extends(&self.system, &previous.system, &system)?;
        }
        Ok(AuditState { user, system })
    }

    /// Checks that `new` extends `old`, recording the tiles read, which
    /// become the evidence if it does not.
    fn extends(
        &self,
        client: &Client,
        old: &VerifiedCheckpoint,
        new: &VerifiedCheckpoint,
    ) -> Result<(), AuditError> {
        let fork = |kind, tiles| {
            AuditError::Fork(Box::new(Evidence {
                log: client.log(),
                kind,
                key: self.user.key().clone(),
                origin: None,
                old: old.clone(),
                new: new.clone(),
                tiles,
            }))
        };
        if new.size() < old.size() {
            return Err(fork(ForkKind::Smaller, BTreeMap::new()));
        }
        if new.size() == old.size() {
            return if new.root() == old.root() {
                Ok(())
            } else {
                Err(fork(ForkKind::SameSizeDifferentRoot, BTreeMap::new()))
            };
        }
        let source = Recording {
            inner: HttpTiles::new(client.http().clone(), client.prefix()),
            seen: Mutex::new(BTreeMap::new()),
        };
        let reader = TileHashReader::new(source, new.size(), *new.root());
        reader.verify_root().map_err(tiles_error(new.size()))?;
        let edge = Edge::from_reader(&reader, old.size()).map_err(tiles_error(new.size()))?;
        if edge.root() == *old.root() {
            return Ok(());
        }
        let tiles = reader
            .source()
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Err(fork(ForkKind::Inconsistent, tiles))
    }
}

/// A tile source that keeps what it served.
struct Recording {
    inner: HttpTiles,
    seen: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl TileSource for Recording {
    type Error = FetchError;

    fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, FetchError> {
        let bytes = self.inner.fetch_tile(tile)?;
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tile.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Tiles from evidence.
struct Stored<'a>(&'a BTreeMap<String, Vec<u8>>);

impl TileSource for Stored<'_> {
    type Error = String;

    fn fetch_tile(&self, tile: &TilePath) -> Result<Vec<u8>, String> {
        self.0
            .get(&tile.to_string())
            .cloned()
            .ok_or_else(|| format!("{tile} is not in the evidence"))
    }
}

impl Evidence {
    /// The evidence file's text (module docs).
    pub fn encode(&self) -> String {
        let tiles: serde_json::Map<String, serde_json::Value> = self
            .tiles
            .iter()
            .map(|(tile, bytes)| (tile.clone(), hex::encode(bytes).into()))
            .collect();
        let mut json = serde_json::json!({
            "format": EVIDENCE_FORMAT,
            "log": self.log.to_string(),
            "kind": self.kind.as_str(),
            "log-public-key": self.key.to_string(),
            "old-checkpoint": self.old.to_string(),
            "new-checkpoint": self.new.to_string(),
            "tiles": tiles,
        });
        if let (Some(origin), Some(object)) = (&self.origin, json.as_object_mut()) {
            object.insert("origin".to_owned(), origin.clone().into());
        }
        let mut text = json.to_string();
        text.push('\n');
        text
    }

    /// Evidence that `old` and `new`, two checkpoints of the log `origin`
    /// signed by `log_key`, have one size and different roots: what a
    /// witness holds when a log asks it to cosign a second root for a size
    /// it cosigned. `log_key` is a user log's key, or a system log's (named
    /// `<user origin>/system`, as [`regis_note::system_verifier`] makes it;
    /// the evidence then names the user log's key), or, named otherwise
    /// than `origin`, the key of a log that is not a Regis register's (the
    /// evidence then names the origin). Checked as [`Self::verify`] checks
    /// a file.
    pub fn same_size_different_root(
        origin: &str,
        log_key: &Verifier,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
    ) -> Result<Evidence, EvidenceError> {
        let (log, key, named) = if log_key.name().as_str() == origin {
            let user_key = origin
                .strip_suffix("/system")
                .and_then(|name| KeyName::new(name).ok())
                .map(|name| Verifier::new(name, log_key.signature_type(), *log_key.public_key()))
                .filter(|user| regis_note::system_verifier(user).as_ref() == Some(log_key));
            match user_key {
                Some(user) => (Log::System, user, None),
                None => (Log::User, log_key.clone(), None),
            }
        } else {
            (Log::User, log_key.clone(), Some(origin.to_owned()))
        };
        let checkpoint = |signed: &SignedCheckpoint, name| {
            VerifiedCheckpoint::signed_by(signed.clone(), origin, log_key, name)
                .map_err(|e| EvidenceError(e.to_string()))
        };
        let evidence = Evidence {
            log,
            kind: ForkKind::SameSizeDifferentRoot,
            old: checkpoint(old, "old-checkpoint")?,
            new: checkpoint(new, "new-checkpoint")?,
            key,
            origin: named,
            tiles: BTreeMap::new(),
        };
        // Whether it holds, exactly as whoever reads the file will check.
        Self::verify(evidence.encode().as_bytes(), &evidence.key)
    }

    /// Reads an evidence file and checks, from nothing but its contents
    /// and `key` (the user log's key, pinned by whoever checks), that it
    /// shows what it claims (module docs).
    pub fn verify(bytes: &[u8], key: &Verifier) -> Result<Evidence, EvidenceError> {
        let wrong = |reason: String| EvidenceError(reason);
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| wrong(e.to_string()))?;
        let field = |name: &str| {
            json.get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| wrong(format!("no string field {name:?}")))
        };
        if field("format")? != EVIDENCE_FORMAT {
            return Err(wrong(format!("the format is not {EVIDENCE_FORMAT}")));
        }
        if field("log-public-key")? != key.to_string() {
            return Err(wrong(format!(
                "it is about key {}, not {key}",
                field("log-public-key")?
            )));
        }
        let kind = match field("kind")? {
            "inconsistent" => ForkKind::Inconsistent,
            "same-size-different-root" => ForkKind::SameSizeDifferentRoot,
            "smaller" => ForkKind::Smaller,
            other => return Err(wrong(format!("unknown kind {other:?}"))),
        };
        let origin = match json.get("origin") {
            None => None,
            Some(value) => Some(
                value
                    .as_str()
                    .ok_or_else(|| wrong("the field \"origin\" is not a string".into()))?
                    .to_owned(),
            ),
        };
        // The log's origin and the key its checkpoints are signed with.
        let (log, log_origin, log_key) = match (field("log")?, &origin) {
            ("user", None) => (Log::User, key.name().to_string(), key.clone()),
            ("user", Some(origin)) => (Log::User, origin.clone(), key.clone()),
            ("system", None) => {
                let system = regis_note::system_verifier(key)
                    .ok_or_else(|| wrong(format!("{key} has no system log")))?;
                (Log::System, system.name().to_string(), system)
            }
            ("system", Some(_)) => {
                return Err(wrong(
                    "a log named by \"origin\" has no system log: \"log\" must be \"user\"".into(),
                ));
            }
            (other, _) => return Err(wrong(format!("unknown log {other:?}"))),
        };
        let checkpoint = |name: &str| {
            let signed = SignedCheckpoint::parse(field(name)?.as_bytes())
                .map_err(|e| wrong(format!("{name}: {e}")))?;
            VerifiedCheckpoint::signed_by(signed, &log_origin, &log_key, name)
                .map_err(|e| wrong(e.to_string()))
        };
        let old = checkpoint("old-checkpoint")?;
        let new = checkpoint("new-checkpoint")?;
        let mut tiles = BTreeMap::new();
        if let Some(map) = json.get("tiles").and_then(|v| v.as_object()) {
            for (path, value) in map {
                let tile = TilePath::parse(path).map_err(|e| wrong(format!("{path}: {e}")))?;
                let bytes = value
                    .as_str()
                    .and_then(|text| hex::decode(text).ok())
                    .ok_or_else(|| wrong(format!("{path}: not hex")))?;
                tiles.insert(tile.to_string(), bytes);
            }
        }
        let holds = match kind {
            ForkKind::Smaller => new.size() < old.size(),
            ForkKind::SameSizeDifferentRoot => new.size() == old.size() && new.root() != old.root(),
            ForkKind::Inconsistent => {
                if old.size() >= new.size() {
                    return Err(wrong("the old checkpoint is not the smaller".into()));
                }
                let reader = TileHashReader::new(Stored(&tiles), new.size(), *new.root());
                let show = |e: TileVerifyError<String>| wrong(e.to_string());
                reader.verify_root().map_err(show)?;
                let edge = Edge::from_reader(&reader, old.size()).map_err(show)?;
                edge.root() != *old.root()
            }
        };
        if !holds {
            return Err(wrong(format!(
                "checkpoints {} and {} are not {}",
                old.size(),
                new.size(),
                kind.as_str()
            )));
        }
        Ok(Evidence {
            log,
            kind,
            key: key.clone(),
            origin,
            old,
            new,
            tiles,
        })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it,
/// synced, renamed over it, and the directory synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let mut temporary_name = name.to_owned();
    temporary_name.push(".new");
    let temporary = dir.join(temporary_name);
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}
