//! The verifying client: every value it returns was checked against the
//! pinned verifier key and the log's hashes.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use regis_merkle::{Edge, Frontier, Hash, TileHashReader, TileVerifyError, leaf_hash};

use regis_model::Log;
use regis_model::api::path_segment;
use regis_model::{Entry, Item, ItemHash, entry_number};
use regis_note::{SignedCheckpoint, Verifier, Verifiers, WitnessPolicy};

use crate::delta::DigestState;
use crate::entries::LogRange;
use crate::error::Error;
use crate::http::{FetchError, FetchFailure, Http, HttpTiles, Limits};
use crate::replayed::ReplayedRecords;

/// A client of one log of one register, holding the pinned verifier key of
/// that log. The key must come from the caller (configuration, a catalogue
/// fetched out of band), never from the server being checked. A client
/// made by [`Client::new`] reads the user log; [`Client::system`] gives one
/// of the system log. With a witness policy
/// ([`Client::with_witness_policy`]) every checkpoint it accepts must also
/// carry cosignatures meeting the policy's quorum.
#[derive(Clone, Debug)]
pub struct Client {
    http: Http,
    key: Verifier,
    log: Log,
    /// Shared with the system-log client and the auditor's two clients.
    witnesses: Option<Arc<WitnessPolicy>>,
}

/// A checkpoint of one of the register's logs whose origin and signature
/// the pinned key verified, and whose cosignatures met the client's witness
/// policy if it has one. Only this crate makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    signed: SignedCheckpoint,
    /// The policy's witnesses whose cosignatures verified: policy name and
    /// cosignature time (POSIX seconds), in the note's line order.
    cosigned_by: Vec<(String, u64)>,
}

impl VerifiedCheckpoint {
    /// `signed`, checked to be a checkpoint of `origin` signed by `key`,
    /// with no witness policy: the check every accepted checkpoint passes
    /// first, and all that evidence needs. `source` names it in errors.
    pub(crate) fn signed_by(
        signed: SignedCheckpoint,
        origin: &str,
        key: &Verifier,
        source: &str,
    ) -> Result<Self, Error> {
        signed
            .verify(origin, key, &Verifiers::default())
            .map_err(|error| Error::CheckpointSignature {
                url: source.to_owned(),
                error,
            })?;
        Ok(VerifiedCheckpoint {
            signed,
            cosigned_by: Vec::new(),
        })
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.signed.checkpoint().size()
    }

    /// The root hash.
    pub fn root(&self) -> &Hash {
        self.signed.checkpoint().root_hash()
    }

    /// The signed note, with every signature line as served.
    pub fn signed(&self) -> &SignedCheckpoint {
        &self.signed
    }

    /// The witnesses of the client's policy that cosigned it: each one's
    /// name in the policy and the time it cosigned at (POSIX seconds).
    /// Empty for a client without a policy.
    pub fn cosigned_by(&self) -> &[(String, u64)] {
        &self.cosigned_by
    }
}

/// The exact bytes of the signed checkpoint.
impl fmt::Display for VerifiedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.signed.fmt(f)
    }
}

/// An entry proved to be in the log at a verified checkpoint, with its
/// items, each re-hashed. That it is the key's *latest* entry is the
/// server's word: only a replay ([`Client::replay`]) proves that, or, from
/// a static copy, the scan that read every entry after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// The entry's number (its leaf index + 1).
    pub number: u64,
    /// The entry, parsed from the proved leaf bytes.
    pub entry: Entry,
    /// Its items, in the entry's order.
    pub items: Vec<Item>,
    /// The checkpoint the entry was proved against.
    pub checkpoint: VerifiedCheckpoint,
}

/// A key's latest entry, re-derived by replaying the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedRecord {
    /// The entry's number.
    pub number: u64,
    /// The entry.
    pub entry: Entry,
}

/// What [`Client::check_records`] compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsCheck {
    /// Records the server lists exactly as the replay derived them.
    pub matching: u64,
    /// Records the server lists at an entry after the replayed checkpoint
    /// (the register grew meanwhile): not comparable, not counted above.
    pub newer: u64,
}

/// What a full replay checked and re-derived.
#[derive(Debug)]
pub struct Replay {
    /// Entries replayed: the checkpoint's size.
    pub entries: u64,
    /// Distinct items fetched and re-hashed.
    pub items: u64,
    /// Every key's latest entry, in key order (on local disk past what
    /// fits in memory).
    pub records: ReplayedRecords,
}

/// The register's base URL: `http(s)://host[:port]/…/registers/NAME`.
fn check_base_url(url: &str) -> Result<(), Error> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    let name = rest
        .and_then(|rest| rest.split_once('/'))
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, path)| path.rsplit_once('/'))
        .filter(|(parent, _)| *parent == "registers" || parent.ends_with("/registers"))
        .map(|(_, name)| name);
    match name {
        Some(name) if !name.is_empty() && !url.contains(['?', '#']) => Ok(()),
        _ => Err(Error::BaseUrl {
            url: url.to_owned(),
        }),
    }
}

impl Client {
    /// A client of the register at `url` (`http://host/registers/NAME`)
    /// whose user log is signed by `key`, with default [`Limits`].
    pub fn new(url: &str, key: Verifier) -> Result<Self, Error> {
        Self::with_limits(url, key, Limits::default())
    }

    /// As [`Self::new`], with explicit limits.
    pub fn with_limits(url: &str, key: Verifier, limits: Limits) -> Result<Self, Error> {
        check_base_url(url)?;
        Ok(Client {
            http: Http::new(url, limits),
            key,
            log: Log::User,
            witnesses: None,
        })
    }

    /// This client, requiring from now on that every checkpoint it accepts
    /// (served, in a record's proof, or given to
    /// [`Self::verify_checkpoint`]) carries cosignatures meeting `policy`
    /// (C2SP tlog-policy): each cosignature from a witness the policy names
    /// must verify, over the exact checkpoint text, with a time neither
    /// zero nor in the future, and those witnesses must make up the quorum.
    /// The system-log client ([`Self::system`]) keeps the policy; an
    /// `Arc` shares one policy among several clients.
    pub fn with_witness_policy(self, policy: impl Into<Arc<WitnessPolicy>>) -> Self {
        Client {
            witnesses: Some(policy.into()),
            ..self
        }
    }

    /// The witness policy this client requires, if any.
    pub fn witness_policy(&self) -> Option<&WitnessPolicy> {
        self.witnesses.as_deref()
    }

    /// A client of the same register's system log. Regis signs it with the
    /// user log's key under the name `<user origin>/system`, so its key is
    /// derived from the pinned one, never taken from the server.
    pub fn system(&self) -> Result<Client, Error> {
        let key = regis_note::system_verifier(&self.key).ok_or_else(|| Error::SystemKey {
            key: self.key.to_string(),
        })?;
        Ok(Client {
            http: self.http.clone(),
            key,
            log: Log::System,
            witnesses: self.witnesses.clone(),
        })
    }

    /// The pinned key.
    pub fn key(&self) -> &Verifier {
        &self.key
    }

    /// Which log this client reads.
    pub fn log(&self) -> Log {
        self.log
    }

    /// The register's base URL.
    pub fn base_url(&self) -> &str {
        self.http.base()
    }

    pub(crate) fn http(&self) -> &Http {
        &self.http
    }

    /// The log's path segment under the base URL.
    pub(crate) fn prefix(&self) -> &'static str {
        match self.log {
            Log::User => "log",
            Log::System => "system-log",
        }
    }

    /// The verifier keys `B/register` states for the user and the system
    /// log (`log-public-key`, `system-log-public-key`): the server's word,
    /// to compare with pinned and derived keys, never to trust.
    pub fn served_keys(&self) -> Result<(String, String), Error> {
        let url = format!("{}/register", self.http.base());
        let bytes = self.http.document("register")?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Metadata {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let field = |name: &str| {
            json.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| Error::Metadata {
                    url: url.clone(),
                    reason: format!("no string field {name:?}"),
                })
        };
        Ok((field("log-public-key")?, field("system-log-public-key")?))
    }

    /// The log's origin: Regis names a log's key by its origin.
    fn origin(&self) -> &str {
        self.key.name().as_str()
    }

    /// Fetches `B/log/checkpoint` (`B/system-log/checkpoint` for the
    /// system log) and verifies it.
    pub fn checkpoint(&self) -> Result<VerifiedCheckpoint, Error> {
        let path = format!("{}/checkpoint", self.prefix());
        let bytes = self.http.document(&path)?;
        self.verify_checkpoint(&bytes, &format!("{}/{path}", self.http.base()))
    }

    /// Verifies checkpoint bytes obtained elsewhere (an auditor's saved
    /// state, a witness); `source` names them in errors.
    pub fn verify_checkpoint(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<VerifiedCheckpoint, Error> {
        self.parse_and_accept(bytes, source, self.witnesses.as_deref())
    }

    /// Verifies a checkpoint this client's owner accepted before and kept
    /// (an auditor's state, a mirror's stored checkpoints): the origin and
    /// the log's signature only. It is the point new checkpoints must be
    /// consistent with; the witness policy governs what is accepted from
    /// now on, so adding a policy does not refuse what was kept without one.
    pub fn verify_saved_checkpoint(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<VerifiedCheckpoint, Error> {
        self.parse_and_accept(bytes, source, None)
    }

    fn parse_and_accept(
        &self,
        bytes: &[u8],
        source: &str,
        policy: Option<&WitnessPolicy>,
    ) -> Result<VerifiedCheckpoint, Error> {
        let signed = SignedCheckpoint::parse(bytes).map_err(|error| Error::CheckpointFormat {
            url: source.to_owned(),
            error,
        })?;
        self.accept(signed, source, policy)
    }

    /// The one place a checkpoint is accepted: [`accept_checkpoint`] with
    /// this client's log and key.
    fn accept(
        &self,
        signed: SignedCheckpoint,
        source: &str,
        policy: Option<&WitnessPolicy>,
    ) -> Result<VerifiedCheckpoint, Error> {
        accept_checkpoint(signed, self.origin(), &self.key, source, policy)
    }

    /// A reader of `checkpoint`'s tree from the server's hash tiles, each
    /// verified against the checkpoint's root before use.
    pub fn tiles(&self, checkpoint: &VerifiedCheckpoint) -> TileHashReader<HttpTiles> {
        TileHashReader::new(
            HttpTiles::new(self.http.clone(), self.prefix()),
            checkpoint.size(),
            *checkpoint.root(),
        )
    }

    /// Checks that the server's right-edge hash tiles fold to the
    /// checkpoint's root.
    pub fn verify_tree(&self, checkpoint: &VerifiedCheckpoint) -> Result<(), Error> {
        self.tiles(checkpoint)
            .verify_root()
            .map_err(tiles_error(checkpoint.size()))
    }

    /// Checks that `new` extends `old`, from `new`'s verified hash tiles:
    /// the root of its first `old.size()` leaves is recomputed and must be
    /// `old`'s root. No consistency proof from the server is used.
    pub fn consistency(
        &self,
        old: &VerifiedCheckpoint,
        new: &VerifiedCheckpoint,
    ) -> Result<(), Error> {
        let (old_size, new_size) = (old.size(), new.size());
        if old_size > new_size {
            return Err(Error::Shrunk {
                old: old_size,
                new: new_size,
            });
        }
        if old_size == new_size && old.root() == new.root() {
            return Ok(());
        }
        let reader = self.tiles(new);
        reader.verify_root().map_err(tiles_error(new_size))?;
        let edge = Edge::from_reader(&reader, old_size).map_err(tiles_error(new_size))?;
        if edge.root() != *old.root() {
            return Err(Error::Inconsistent {
                old: old_size,
                new: new_size,
            });
        }
        Ok(())
    }

    /// Fetches record `key` with its C2SP tlog-proof and verifies it: the
    /// proof's checkpoint with the pinned key (and the witness policy, as
    /// any checkpoint this client accepts), the inclusion of the leaf
    /// hash recomputed from the leaf bytes, the leaf's key and number, and
    /// every item re-hashed. The proof may be against a newer or older
    /// checkpoint than `trusted` (the log moves on); it is accepted only if
    /// the two are consistent, checked from tiles. Where there is no proof
    /// (404 or 403, but for the origin's own "no such record"), the base
    /// URL is taken for a static copy: the entry bundles are scanned
    /// (`static_copy.rs`).
    pub fn record(&self, key: &str, trusted: &VerifiedCheckpoint) -> Result<VerifiedRecord, Error> {
        let path = format!("records/{}/proof.tlog-proof", path_segment(key));
        let bytes = match self.http.document_or_missing(&path)? {
            Ok(bytes) => bytes,
            // The origin's word that there is no such record.
            Err(missing) if missing.code.as_deref() == Some("no-record") => {
                return Err(missing.error.into());
            }
            // No proofs here: a static copy.
            Err(_) => return self.record_from_bundles(key, trusted),
        };
        let (proved, number, entry) = verify_record_proof(
            key,
            &bytes,
            &self.key,
            self.witnesses.as_deref(),
            &format!("{}/{path}", self.http.base()),
        )?;
        let items = entry
            .item_hashes
            .iter()
            .map(|hash| self.item(hash))
            .collect::<Result<Vec<_>, _>>()?;
        if proved.size() <= trusted.size() {
            self.consistency(&proved, trusted)?;
        } else {
            self.consistency(trusted, &proved)?;
        }
        Ok(VerifiedRecord {
            number,
            entry,
            items,
            checkpoint: proved,
        })
    }

    /// Fetches `B/<path>`, a document of at most the limit's size.
    pub(crate) fn document(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        self.http.document(path)
    }

    /// [`Self::document`], a 404 or 403 told apart (`Http::document_or_missing`).
    pub(crate) fn document_or_missing(
        &self,
        path: &str,
    ) -> Result<Result<Vec<u8>, crate::http::Missing>, FetchError> {
        self.http.document_or_missing(path)
    }

    /// Runs `read` on the log's checkpoint, fetched and verified. If a
    /// partial object of it is gone ([`Error::is_superseded`]: a static
    /// copy published a newer checkpoint and deleted it), the checkpoint is
    /// fetched again, once, checked to extend the first (from tiles), and
    /// `read` runs on it instead. Returns the checkpoint `read` succeeded
    /// on.
    pub fn at_checkpoint<T>(
        &self,
        mut read: impl FnMut(&VerifiedCheckpoint) -> Result<T, Error>,
    ) -> Result<(VerifiedCheckpoint, T), Error> {
        let first = self.checkpoint()?;
        match read(&first) {
            Ok(value) => Ok((first, value)),
            Err(error) if error.is_superseded() => {
                let newer = self.checkpoint()?;
                self.consistency(&first, &newer)?;
                let value = read(&newer)?;
                Ok((newer, value))
            }
            Err(error) => Err(error),
        }
    }

    /// Fetches `B/items/<hash>` and checks that its canonical JSON hashes
    /// to `hash`.
    pub fn item(&self, hash: &ItemHash) -> Result<Item, Error> {
        let bytes = self.http.document(&format!("items/{hash}"))?;
        // Invalid UTF-8 becomes U+FFFD, so it can only fail the hash check.
        checked_item(hash, &String::from_utf8_lossy(&bytes))
    }

    /// Replays the whole log at `checkpoint` from C2SP tlog-tiles alone
    /// (any tlog-tiles server): every entry bundle, each leaf
    /// checked against the verified level-0 tile hash at its index and
    /// parsed as a v1 user entry numbered by its position, every distinct
    /// item fetched and re-hashed, every key's latest entry re-derived, and
    /// the root folded again from the leaves.
    /// [`Self::replay`] is the same check, faster: items come inline.
    pub fn replay_bundles(&self, checkpoint: &VerifiedCheckpoint) -> Result<Replay, Error> {
        let tiles = self.tiles(checkpoint);
        let mut items: HashSet<ItemHash, DigestState> = HashSet::default();
        let mut records = ReplayedRecords::new(self.log);
        for checked in self.bundle_entries(LogRange::new(&tiles, Frontier::new()))? {
            let checked = checked?;
            for item in &checked.entry.item_hashes {
                if items.insert(*item) {
                    self.item(item)?;
                }
            }
            records.insert(checked.number, checked.entry)?;
        }
        records.finish()?;
        Ok(Replay {
            entries: checkpoint.size(),
            items: items.len() as u64,
            records,
        })
    }

    /// Checks that the server's `B/records` (what most consumers read, with
    /// no proof) lists exactly the records `replay` derived from the
    /// verified log at `checkpoint`: every key, at its latest entry, with
    /// that entry's timestamp and items. A record the server lists at an
    /// entry beyond the checkpoint (the register grew since) is counted as
    /// newer and not compared; any other difference, a missing or extra
    /// key, or a key listed twice or out of key order (the API lists
    /// records in key order) is an [`Error::Records`]. Both lists are
    /// walked side by side in key order, the server's by `after` (the last
    /// key of the page before): memory is one page.
    pub fn check_records(
        &self,
        replay: &Replay,
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<RecordsCheck, Error> {
        let size = checkpoint.size();
        let wrong = |key: &str, reason: String| Error::Records {
            key: key.to_owned(),
            reason,
        };
        let mut replayed = replay.records.iter()?;
        let mut next_replayed = replayed.next().transpose()?;
        let mut last_listed: Option<String> = None;
        let mut check = RecordsCheck {
            matching: 0,
            newer: 0,
        };
        // A server that never ends its pages (or repeats them) is stopped:
        // the replay bounds how many keys there can be, the growth since
        // is allowed a margin.
        let page_size = self.http.records_page();
        let max_pages = replay.records.len().div_ceil(page_size) * 2 + 16;
        for page in 1..=max_pages {
            // Paged by key: each page costs the server the same, however deep.
            let after = last_listed.as_deref().map(path_segment).unwrap_or_default();
            let path = format!("records.json?after={after}&page-size={page_size}");
            let bytes = match self.http.document(&path) {
                Err(error) if page == 1 && error.is_missing() => {
                    return Err(no_record_list(error));
                }
                bytes => bytes?,
            };
            let listed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|error| {
                    wrong(
                        "",
                        format!("page {page} is not a JSON object of records: {error}"),
                    )
                })?;
            for (key, record) in &listed {
                if last_listed.as_ref().is_some_and(|last| key <= last) {
                    return Err(wrong(key, "listed twice, or out of key order".into()));
                }
                last_listed = Some(key.clone());
                // The next replayed key: below this one, it was not listed.
                let mut same_key = None;
                if let Some(record) = next_replayed.take() {
                    match record.entry.key.as_str().cmp(key.as_str()) {
                        Ordering::Less => {
                            return Err(wrong(&record.entry.key, "not listed".into()));
                        }
                        Ordering::Equal => {
                            same_key = Some(record);
                            next_replayed = replayed.next().transpose()?;
                        }
                        Ordering::Greater => next_replayed = Some(record),
                    }
                }
                let number = record
                    .get("entry-number")
                    .and_then(|n| n.as_str())
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| wrong(key, "no entry-number".into()))?;
                if number > size {
                    check.newer += 1;
                    continue;
                }
                let Some(replayed) = same_key else {
                    return Err(wrong(
                        key,
                        format!("listed at entry {number}, but no entry up to {size} has this key"),
                    ));
                };
                if replayed.number != number {
                    return Err(wrong(
                        key,
                        format!(
                            "listed at entry {number}, but its latest entry up to {size} is {}",
                            replayed.number
                        ),
                    ));
                }
                if record.get("entry-timestamp").and_then(|t| t.as_str())
                    != Some(replayed.entry.timestamp.to_string().as_str())
                {
                    return Err(wrong(key, format!("entry {number}'s timestamp differs")));
                }
                let items = record
                    .get("item")
                    .and_then(|items| items.as_array())
                    .ok_or_else(|| wrong(key, "no item array".into()))?;
                let hashes = items
                    .iter()
                    .map(|item| Item::parse(&item.to_string()).map(|item| item.hash()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| wrong(key, format!("an item is not valid: {error}")))?;
                if hashes != replayed.entry.item_hashes {
                    return Err(wrong(
                        key,
                        format!("the items listed are not entry {number}'s items"),
                    ));
                }
                check.matching += 1;
            }
            if (listed.len() as u64) < page_size {
                if let Some(missing) = next_replayed {
                    return Err(wrong(&missing.entry.key, "not listed".into()));
                }
                return Ok(check);
            }
        }
        Err(wrong("", format!("more than {max_pages} pages")))
    }

    /// Replays the whole user log at `checkpoint` (what
    /// [`Self::replay_bundles`] checks), from the RSF delta `0/size`
    /// instead of entry bundles and one request per item: the delta
    /// carries every item just before the entry that uses it. Each user
    /// entry's leaf bytes are rebuilt and checked against the verified
    /// level-0 tile hash at its index, each item re-hashed against the
    /// entry's item hash, every key's latest entry re-derived, and the root
    /// folded again from the leaves. The delta is asked for as by a reader
    /// holding the system log of the current verified system checkpoint
    /// (`?system-size=`), so it carries user entries only: any system
    /// entry in it was appended after that checkpoint, at user size
    /// `size`, and ends the replay. Where that delta's path is a static
    /// copy's tail, or the delta is not served (404, 403), the chain of RSF
    /// chunks is read instead, its system entries passed over. Memory: one level-0 tile, up to
    /// 100,000 records (the rest go to sorted runs in temporary files,
    /// `replayed.rs`) and the set of distinct item hashes.
    pub fn replay(&self, checkpoint: &VerifiedCheckpoint) -> Result<Replay, Error> {
        let tiles = self.tiles(checkpoint);
        let mut items: HashSet<ItemHash, DigestState> = HashSet::default();
        let mut records = ReplayedRecords::new(self.log);
        for checked in self.delta_entries(LogRange::new(&tiles, Frontier::new()), None)? {
            let checked = checked?;
            if let Some((hash, _)) = checked.item {
                items.insert(hash);
            }
            records.insert(checked.number, checked.entry)?;
        }
        records.finish()?;
        Ok(Replay {
            entries: checkpoint.size(),
            items: items.len() as u64,
            records,
        })
    }
}

/// The clock, read here (the pure crates read none) for the witness
/// policy's bound on cosignature times. A clock before 1970 reads 0, so
/// that every cosignature is in its future and refused.
/// `text` parsed as an item, which must hash to `hash`.
pub(crate) fn checked_item(hash: &ItemHash, text: &str) -> Result<Item, Error> {
    let item = Item::parse(text).map_err(|error| Error::ItemFormat { hash: *hash, error })?;
    let found = item.hash();
    if found != *hash {
        return Err(Error::ItemHash {
            expected: *hash,
            found,
        });
    }
    Ok(item)
}

/// The one place a checkpoint is accepted: `origin` and `key`'s
/// signature, then `policy` if there is one. `source` names it in errors.
pub(crate) fn accept_checkpoint(
    signed: SignedCheckpoint,
    origin: &str,
    key: &Verifier,
    source: &str,
    policy: Option<&WitnessPolicy>,
) -> Result<VerifiedCheckpoint, Error> {
    let signed = VerifiedCheckpoint::signed_by(signed, origin, key, source)?.signed;
    let cosigned_by = match policy {
        None => Vec::new(),
        Some(policy) => {
            policy
                .verify(&signed, origin, key, now())
                .map_err(|error| Error::Witnesses {
                    url: source.to_owned(),
                    error,
                })?
                .cosigned_by
        }
    };
    Ok(VerifiedCheckpoint {
        signed,
        cosigned_by,
    })
}

/// Verifies the C2SP tlog-proof `bytes` of record `key` in the user log
/// signed by `key_of_log` (named by its origin): the checkpoint (and
/// `policy`), the inclusion of the leaf carried as `extra`, and that the
/// leaf is an entry of `key` at the proved index. The checkpoint, the
/// entry's number and the entry.
pub(crate) fn verify_record_proof(
    key: &str,
    bytes: &[u8],
    key_of_log: &Verifier,
    policy: Option<&WitnessPolicy>,
    source: &str,
) -> Result<(VerifiedCheckpoint, u64, Entry), Error> {
    let origin = key_of_log.name().as_str();
    let proof = regis_note::TlogProof::parse(bytes).map_err(|error| Error::ProofFormat {
        key: key.to_owned(),
        error,
    })?;
    let leaf = proof.extra().ok_or_else(|| Error::ProofLeaf {
        key: key.to_owned(),
    })?;
    proof
        .verify(&leaf_hash(leaf), origin, key_of_log, &Verifiers::default())
        .map_err(|error| Error::Proof {
            key: key.to_owned(),
            error,
        })?;
    let proved = accept_checkpoint(
        proof.checkpoint().clone(),
        origin,
        key_of_log,
        source,
        policy,
    )?;
    let number = entry_number(proof.index());
    let entry = parse_leaf(number, leaf)?;
    if entry.key != key {
        return Err(Error::WrongKey {
            asked: key.to_owned(),
            found: entry.key,
        });
    }
    Ok((proved, number, entry))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A first page of `B/records` answered 404 or 403.
fn no_record_list(error: FetchError) -> Error {
    match error.failure {
        FetchFailure::Status(status) => Error::NoRecordList {
            url: error.url,
            status,
        },
        _ => Error::Fetch(error),
    }
}

pub(crate) fn tiles_error(size: u64) -> impl Fn(TileVerifyError<FetchError>) -> Error {
    move |error| Error::Tiles { size, error }
}

/// Parses the leaf at entry `number` as a v1 user entry that says it is
/// entry `number`.
fn parse_leaf(number: u64, leaf: &[u8]) -> Result<Entry, Error> {
    parse_leaf_of(Log::User, number, leaf)
}

/// Parses the leaf at entry `number` of `log` as a v1 entry that says it
/// is entry `number`.
pub(crate) fn parse_leaf_of(log: Log, number: u64, leaf: &[u8]) -> Result<Entry, Error> {
    let (claimed, entry) =
        Entry::parse_leaf(log, leaf).map_err(|error| Error::Leaf { number, error })?;
    if claimed != number {
        return Err(Error::EntryNumber { number, claimed });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for good in [
            "http://127.0.0.1:8080/registers/country",
            "https://example.org/registers/local-authority-eng/",
            "https://example.org/api/registers/x",
        ] {
            assert!(check_base_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.org/registers/country",
            "http:///registers/country",
            "http://example.org/country",
            "http://example.org/registers/",
            "http://example.org/registers/country?x=1",
            "example.org/registers/country",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
